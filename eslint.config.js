import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'data/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      // Typed rules: the TypeScript project's types (tsconfig.json); files outside it (this one, bin/, models/) by default options.
      parserOptions: {
        projectService: { allowDefaultProject: ['eslint.config.js', 'bin/*.js', 'models/*.mjs'] },
        tsconfigRootDir: import.meta.dirname,
      },
      globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', URL: 'readonly' },
    },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // A promise nobody awaits or catches is an unhandled rejection waiting to happen; `void` says it is meant.
      // node:test's describe/it return promises the runner itself awaits.
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            {
              from: 'package',
              package: 'node:test',
              name: ['describe', 'it', 'test', 'suite', 'before', 'after', 'beforeEach', 'afterEach'],
            },
          ],
        },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      // A switch over a union names every member, or has a default that says what the rest means.
      '@typescript-eslint/switch-exhaustiveness-check': ['error', { considerDefaultExhaustiveForUnions: true }],
    },
  },
  // Tests read JSON bodies whose shape is the assertion itself.
  { files: ['test/**'], rules: { '@typescript-eslint/no-explicit-any': 'off' } },
  // The dashboard (ui/): browser ES modules served as written, outside the TypeScript project.
  { files: ['ui/**/*.js'], ...tseslint.configs.disableTypeChecked },
  {
    files: ['ui/**/*.js'],
    languageOptions: {
      sourceType: 'module',
      globals: Object.fromEntries(
        (
          'AbortController Blob clearTimeout document fetch getComputedStyle history localStorage location matchMedia navigator Node ' +
          'performance ResizeObserver sessionStorage setTimeout TextDecoderStream URLSearchParams window'
        )
          .split(' ')
          .map((name) => [name, 'readonly']),
      ),
    },
  },
);
