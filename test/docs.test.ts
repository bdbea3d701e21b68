/** The README's usage example must run as written, against the built package. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { it } from 'node:test';
import { promisify } from 'node:util';
import { IPC_ERROR_CODES } from '../src/index.js';

const root = new URL('../../', import.meta.url);

it('the README usage example runs', async () => {
  const readme = await readFile(new URL('README.md', root), 'utf8');
  const usage = readme.slice(readme.indexOf('## Usage'));
  const code = /```ts\n([\s\S]*?)```/.exec(usage)?.[1];
  assert.ok(code, 'README has a ts block under ## Usage');
  // The snippet is plain JavaScript: it must stay free of type annotations.
  const script = new URL('dist/readme-usage.mjs', root);
  await writeFile(script, code);
  const { stdout } = await promisify(execFile)(process.execPath, [script.pathname]);
  assert.match(stdout, /^1 /m);
  assert.match(stdout, /^5 /m);
});

it('docs/errors.md explains every error code, in order', async () => {
  const doc = await readFile(new URL('docs/errors.md', root), 'utf8');
  const documented = [...doc.matchAll(/^\| `([A-Z_]+)`/gm)].map((m) => m[1]);
  assert.deepEqual(documented, [...IPC_ERROR_CODES]);
});
