// `npm run lint`: eslint (layers and cycles), prettier (format) and the OpenAPI document's lint.
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import globals from 'globals';
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript';
import importX from 'eslint-plugin-import-x';
import tseslint from 'typescript-eslint';

const DOMAIN = ['customers', 'inventory', 'invariants', 'notifications', 'orders', 'reports', 'restocks'].map(
  (d) => `./src/${d}`,
);

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'test-results/**', 'bench/tmp/**', 'src/http/dashboard/**', '.data/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  // The console's page script runs in the browser, as a classic script.
  { files: ['src/http/console/**/*.js'], languageOptions: { globals: globals.browser, sourceType: 'script' } },
  {
    files: ['**/*.ts', '**/*.mts'],
    plugins: { 'import-x': importX },
    settings: {
      'import-x/resolver-next': [createTypeScriptImportResolver({ project: './tsconfig.json' })],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts', '.mts'] },
      'import-x/extensions': ['.ts', '.mts', '.js', '.cjs', '.mjs'],
    },
    rules: {
      // One way down: entry points (app, http, jobs) → domain → platform.
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      'import-x/no-restricted-paths': [
        'error',
        {
          zones: [
            ...DOMAIN.map((target) => ({
              target,
              from: ['./src/http', './src/jobs', './src/app'],
              message:
                'domain code never imports the HTTP, job or process layers: ask through the unit of work or the context',
            })),
            {
              target: './src/platform',
              from: ['./src/http', './src/jobs', './src/app', ...DOMAIN],
              message: 'platform code imports nothing above it',
            },
            { target: './src/jobs', from: './src/http', message: 'the job layer does not import the HTTP layer' },
            {
              target: ['./src/jobs', './src/http'],
              from: './src/app',
              except: ['./context.ts'],
              message: 'only the process wiring imports the entry points',
            },
          ],
        },
      ],
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
      '@typescript-eslint/no-require-imports': 'off',
      'no-empty': ['error', { allowEmptyCatch: true }],
    },
  },
  {
    files: ['**/*.cjs'],
    languageOptions: {
      globals: {
        require: 'readonly',
        module: 'writable',
        __dirname: 'readonly',
        process: 'readonly',
        console: 'readonly',
      },
    },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  prettier,
);
