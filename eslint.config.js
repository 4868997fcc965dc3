// ESLint 9 flat config. Type-aware (typescript-eslint, tsconfig.test.json: src, test, bench and scripts in one
// program) and kept to rules that find bugs: promises nobody waits for, switches that miss a case, dead code,
// `==` surprises. Nothing here is about layout (that is Prettier's job: `npm run format`) or taste; a rule
// that mostly flags correct code of this code base is left out, with the reason below.
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import globals from 'globals';
import tseslint from 'typescript-eslint';

// Rules for every file, JavaScript or TypeScript.
const everywhere = {
  // `==` only where it means "null or undefined" (`x == null`); elsewhere its coercions hide bugs.
  eqeqeq: ['error', 'always', { null: 'ignore' }],
  // Comparing a value with itself is always a mistake (Number.isNaN says what `x !== x` means).
  'no-self-compare': 'error',
  // From eslint:recommended, off: the parsers, the packed format and the escapers match control characters
  // on purpose (\x00-\x1f, \x1d, \x1f), and the tests match indented output with literal spaces, which reads
  // better than ` {6}`.
  'no-control-regex': 'off',
  'no-regex-spaces': 'off',
};

export default defineConfig(
  { ignores: ['dist/**', 'node_modules/**', '.bench-data/**', '.test-tmp/**', '.scratch/**', '.exp/**'] },

  // eslint:recommended is all "problem" rules (no-fallthrough, no-unreachable, no-dupe-keys, no-cond-assign,
  // no-self-assign, no-loss-of-precision, no-constant-binary-expression, ...), none of them stylistic.
  { files: ['**/*.{js,mjs,ts}'], extends: [js.configs.recommended], rules: everywhere },

  {
    files: ['src/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts', 'scripts/**/*.ts'],
    // eslintRecommended turns off the core rules TypeScript already checks (no-undef, no-redeclare, ...).
    extends: [tseslint.configs.eslintRecommended],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { project: './tsconfig.test.json', tsconfigRootDir: import.meta.dirname },
    },
    plugins: { '@typescript-eslint': tseslint.plugin },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // eslintRecommended also turns these on; they are taste, not bugs.
      'prefer-const': 'off',
      'prefer-rest-params': 'off',
      'prefer-spread': 'off',

      // Promises. The pipeline, the sinks and the tests are async end to end: a promise nobody awaits loses
      // its error (or kills the process as an unhandled rejection) and lets the next step start early.
      // node:test's test()/describe()/it()/suite() at the top of a file are the runner's to await; a
      // subtest through the context (t.test) is not in that list and must be awaited.
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [{ from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'suite'] }],
        },
      ],
      // An async callback where a void one is expected (an event handler, forEach): its rejection is unhandled.
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      // `return promise` inside try/catch/finally skips the catch and runs the finally before the promise settles.
      '@typescript-eslint/return-await': ['error', 'in-try-catch'],
      // Rejecting with a caught error as it is (`catch (e) { reject(e) }`) passes on what was thrown; fine.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true }],
      // Errors are Error objects (a stack, a message). The test emulators of Elasticsearch and RDS throw their
      // response objects on purpose, to unwind to the request handler that catches exactly that type.
      '@typescript-eslint/only-throw-error': [
        'error',
        {
          allow: [
            { from: 'file', name: 'DocFailure', path: 'test/es-server/server.ts' },
            { from: 'file', name: 'QueryError', path: 'test/rds-server/server.ts' },
          ],
        },
      ],

      // Types that say something. A switch over a union that misses a member (and has no default) is the bug
      // a new enum value brings; an assertion to the type the value already has hides the day that changes.
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
      '@typescript-eslint/no-unnecessary-type-assertion': 'error',
      // Known traps that find nothing today: `for in` over an array, `delete arr[i]`, string code given to
      // setTimeout, spreading a string or a Promise into an object, unary minus on a non-number, `!` after `?.`.
      '@typescript-eslint/no-for-in-array': 'error',
      '@typescript-eslint/no-array-delete': 'error',
      '@typescript-eslint/no-implied-eval': 'error',
      '@typescript-eslint/no-misused-spread': 'error',
      '@typescript-eslint/no-unsafe-unary-minus': 'error',
      '@typescript-eslint/no-non-null-asserted-optional-chain': 'error',
      '@typescript-eslint/no-duplicate-enum-values': 'error',

      // Dead code: an unused variable is often the one the code meant to use. `_name` marks one kept on purpose
      // (an interface's parameter, a destructured field left out of `...rest`).
      'no-unused-vars': 'off',
      '@typescript-eslint/no-unused-vars': [
        'error',
        {
          args: 'after-used',
          argsIgnorePattern: '^_',
          varsIgnorePattern: '^_',
          caughtErrors: 'none',
          destructuredArrayIgnorePattern: '^_',
          ignoreRestSiblings: true,
        },
      ],
      // A statement that computes a value and drops it (`x.length;`, `a === b;`) meant to do something.
      // `a && f()` and `c ? f() : g()` as statements are the code base's style, not a mistake.
      'no-unused-expressions': 'off',
      '@typescript-eslint/no-unused-expressions': ['error', { allowShortCircuit: true, allowTernary: true }],

      // Left out, for the record: no-unsafe-* and no-explicit-any (config, JSON and SQL rows are `unknown`/
      // records by design); restrict-template-expressions, restrict-plus-operands and no-base-to-string
      // (hundreds of hits on numbers and validated config values, no bug among them); unbound-method (the
      // objects here are closures, never `this`-bound classes); no-unnecessary-condition (noisy with
      // noUncheckedIndexedAccess); no-non-null-assertion, require-await, prefer-const and the other
      // stylistic rules; no-deprecated (Node's typings flag the Hmac *type*, only its constructor is);
      // no-template-curly-in-string (the config's own `${VAR}` syntax is in strings everywhere);
      // no-unmodified-loop-condition (async loops wait for a flag that a callback sets).
    },
  },

  // The UI's browser modules (served as they are, no build step).
  { files: ['src/ui/static/**/*.js'], languageOptions: { sourceType: 'module', globals: globals.browser } },
  // Node scripts in plain JavaScript: the test runner, the CLI entry, this file.
  { files: ['scripts/**/*.mjs', 'bin/**/*.js', 'eslint.config.js'], languageOptions: { sourceType: 'module', globals: globals.node } },
);
