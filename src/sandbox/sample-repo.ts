/**
 * The sample repository the sandbox works on: a tiny TypeScript project with one test, made
 * into a real bare repository (`sandbox/hello`) that the bot clones over `file://`.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createBareRepo, type BareRepo } from './bare-repo.js';

/** The sandbox's one repository, as `NIGHTSHIFT_REPOS` names it. */
export const SAMPLE_REPO = 'sandbox/hello';

/**
 * The files of the sample's first commit. Its tests run with `tsx --test` (Node 20 cannot run
 * TypeScript by itself); the sandbox puts nightshift's own `node_modules/.bin` on the agents'
 * PATH, so they run offline, as a developer's `npm test` would after `npm install`.
 */
export const SAMPLE_REPO_FILES: Readonly<Record<string, string>> = {
  'README.md': '# hello\n\nThe sample project of the nightshift sandbox: a greeting and its test.\n\nRun the tests with `npm test`.\n',
  'AGENTS.md':
    '# Guidelines\n\n- TypeScript, ES modules; import local files with a `.js` extension.\n- Every module under `src/` has a test under `test/` (`node:test`, `node:assert/strict`).\n- Run `npm test` before you finish.\n',
  'package.json': `${JSON.stringify(
    {
      name: 'hello',
      version: '0.1.0',
      private: true,
      type: 'module',
      scripts: { test: 'tsx --test test/*.test.ts' },
      devDependencies: { tsx: '^4.20.0' },
    },
    null,
    2,
  )}\n`,
  'tsconfig.json': `${JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true }, include: ['src', 'test'] }, null, 2)}\n`,
  'src/greet.ts': "/** The greeting for `name`. */\nexport function greet(name: string): string {\n  return `Hello, ${name}!`;\n}\n",
  'test/greet.test.ts':
    "import assert from 'node:assert/strict';\nimport { test } from 'node:test';\nimport { greet } from '../src/greet.js';\n\ntest('greets by name', () => {\n  assert.equal(greet('Ada'), 'Hello, Ada!');\n});\n",
};

/**
 * The sample's bare repository under `root` (`<root>/sandbox/hello.git`): created with the
 * sample files the first time, reused as it is afterwards (merged work stays).
 */
export function ensureSampleRepo(root: string): BareRepo {
  const [owner = '', name = ''] = SAMPLE_REPO.split('/');
  const path = join(root, owner, `${name}.git`);
  if (!existsSync(path)) return createBareRepo(root, SAMPLE_REPO, { ...SAMPLE_REPO_FILES });
  return { owner, name, fullName: SAMPLE_REPO, path, serverUrl: pathToFileURL(root).href.replace(/\/+$/, '') };
}
