import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, type Tags } from 'yaml';
import { ROOT } from '../helpers/ingest-cli.js';

/** deploy/lambda/template.yaml read for the tests: its function role's policy statements. */
/** CloudFormation's short-form intrinsic functions, read as { fn, args }. */
const CFN_TAGS: Tags = ['Ref', 'Sub', 'GetAtt', 'If', 'Not', 'Equals', 'Split', 'Join', 'Select', 'And', 'Or', 'Condition', 'FindInMap'].flatMap((fn) =>
  (['scalar', 'seq', 'map'] as const).map((nodeClass) => ({
    tag: `!${fn}`,
    collection: nodeClass === 'scalar' ? undefined : nodeClass,
    resolve: (value: unknown) => ({ fn, args: value instanceof Object && 'toJSON' in value ? (value as { toJSON(): unknown }).toJSON() : value }),
    ...(nodeClass === 'scalar' ? {} : { nodeClass: undefined }),
  })),
);

interface Statement {
  Sid?: string;
  Effect: string;
  Action: string[];
  Resource: unknown;
}

export function templatePolicy(): { statements: Statement[]; conditional: Statement[]; template: Record<string, unknown> } {
  const template = parse(readFileSync(join(ROOT, 'deploy', 'lambda', 'template.yaml'), 'utf8'), { customTags: CFN_TAGS }) as Record<string, unknown>;
  const resources = template['Resources'] as Record<string, { Type: string; Properties: Record<string, unknown> }>;
  const role = resources['FunctionRole']!;
  assert.equal(role.Type, 'AWS::IAM::Role');
  const policies = role.Properties['Policies'] as { PolicyDocument: { Statement: unknown[] } }[];
  assert.equal(role.Properties['ManagedPolicyArns'], undefined, 'no managed policy: they grant more than the code calls');
  const statements: Statement[] = [];
  const conditional: Statement[] = [];
  for (const p of policies)
    for (const s of p.PolicyDocument.Statement) {
      const fn = s as { fn?: string; args?: unknown[] };
      if (fn.fn === 'If') {
        const [, yes, no] = fn.args as [string, Statement, unknown];
        conditional.push(yes);
        assert.deepEqual(no, { fn: 'Ref', args: 'AWS::NoValue' });
      } else statements.push(s as Statement);
    }
  return { statements, conditional, template };
}
