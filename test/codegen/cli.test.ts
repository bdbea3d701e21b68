import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { main } from '../../src/cli/main.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), 'ftl-ipc-gen-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

async function run(...argv: string[]): Promise<{ status: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const status = await main(argv, { out: (t) => (out += t), err: (t) => (err += t) });
  return { status, out, err };
}

describe('ftl-ipc gen', () => {
  it('npm run gen:check: the committed generated code matches the IDL', async () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    const args = pkg.scripts['gen:check']!.split(' ').slice(2);
    assert.deepEqual(args.slice(0, 2), ['gen', '--check']);
    const cwd = process.cwd();
    // Paths in generated headers are relative, so the check runs from the repository root.
    process.chdir(root);
    try {
      const { status, err } = await run(...args);
      assert.equal(status, 0, err);
    } finally {
      process.chdir(cwd);
    }
  });

  it('writes modules, is deterministic, and --check notices a stale one', async () => {
    const idl = join(root, 'examples', 'tcpip', 'tcpip.yaml');
    assert.equal((await run('gen', idl, '--out', scratch)).status, 0);
    const path = join(scratch, 'tcpip.generated.ts');
    const first = readFileSync(path, 'utf8');
    assert.match(first, /^\/\/ @generated/);
    assert.equal((await run('gen', idl, '--out', scratch)).status, 0);
    assert.equal(readFileSync(path, 'utf8'), first);
    writeFileSync(path, `${first}// edited\n`);
    const check = await run('gen', '--check', idl, '--out', scratch);
    assert.equal(check.status, 1);
    assert.match(check.err, /tcpip\.generated\.ts is out of date/);
  });

  it('prints every IDL problem as file:line:col with a code frame and exits 1', async () => {
    const bad = join(scratch, 'bad.yaml');
    writeFileSync(
      bad,
      'name: bad\nprotocols:\n  p:\n    - { name: m, type: push, origin: client, params: [{ name: s, type: strin }] }\n    - { name: m, type: call }\n',
    );
    const { status, err } = await run('gen', bad, '--out', scratch);
    assert.equal(status, 1);
    assert.match(err, /bad\.yaml:4:72: error\[IDL_UNKNOWN_TYPE\]: unknown type "strin"/);
    assert.match(err, /bad\.yaml:5:15: error\[IDL_DUPLICATE_NAME\]/);
    assert.match(err, /> 4 \| {5}- \{ name: m/);
    assert.match(err, /2 problem\(s\) found/);
  });

  it('runs as the ftl-ipc bin', async () => {
    const bin = join(root, 'dist', 'src', 'cli', 'main.js');
    const { stdout } = await promisify(execFile)(process.execPath, [bin, '--help']);
    assert.match(stdout, /Usage: ftl-ipc <command>/);
    await assert.rejects(
      promisify(execFile)(process.execPath, [bin, 'gen']),
      (e: { code?: number }) => e.code === 2,
    );
  });

  it('exits 2 on bad usage, with the usage text', async () => {
    assert.equal((await run()).status, 2);
    const unknown = await run('frobnicate');
    assert.equal(unknown.status, 2);
    assert.match(unknown.err, /unknown command "frobnicate"/);
    const noInput = await run('gen');
    assert.equal(noInput.status, 2);
    assert.match(noInput.err, /Usage: ftl-ipc gen/);
    assert.equal((await run('gen', '--bogus', 'x')).status, 2);
    assert.equal((await run('gen', join(scratch, 'missing'))).status, 2);
    assert.equal((await run('gen', '--help')).status, 0);
  });
});
