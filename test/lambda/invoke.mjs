// Invokes a Lambda handler the way the Lambda runtime does, in its own process: a Lambda-shaped event and
// context (getRemainingTimeInMillis counts down from --timeout-ms), the handler's module loaded by path. Prints
// one JSON line: {"result": …} when the handler returned, {"error": "…"} when it threw (exit 1).
//   node test/lambda/invoke.mjs MODULE [--event JSON] [--timeout-ms N] [--request-id ID]
import { randomUUID } from 'node:crypto';
import process from 'node:process';
import { pathToFileURL } from 'node:url';

const [modulePath, ...rest] = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = rest.indexOf(name);
  return i >= 0 ? rest[i + 1] : dflt;
};
const event = JSON.parse(opt('--event', '{}'));
const deadline = Date.now() + Number(opt('--timeout-ms', '900000'));
const context = {
  awsRequestId: opt('--request-id', randomUUID()),
  functionName: 'auditship',
  functionVersion: '$LATEST',
  memoryLimitInMB: '1024',
  getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
};
const { handler } = await import(pathToFileURL(modulePath).href);
try {
  const result = await handler(event, context);
  process.stdout.write(JSON.stringify({ result }) + '\n');
} catch (err) {
  process.stdout.write(JSON.stringify({ error: err instanceof Error ? err.message : String(err) }) + '\n');
  process.exitCode = 1;
}
