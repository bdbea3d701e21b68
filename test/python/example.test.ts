import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseSystemSpec } from 'ftl-ipc';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const run = promisify(execFile);

describe('examples/polyglot', () => {
  it('ftl-ipc run starts the Python service, the TypeScript client calls it, and all stop', async () => {
    const { stdout, stderr } = await run(
      process.execPath,
      ['dist/src/cli/main.js', 'run', '--no-status', 'examples/polyglot/system.yaml'],
      { cwd: root, timeout: 60_000 },
    );
    assert.deepEqual(stdout.trim().split('\n'), [
      '[client] add: 2^40 + 2 = 1099511627778',
      '[client] stats: 4 values, mean 2.625',
      '[client] shout: HELLO FROM TYPESCRIPT!',
      '[client] stats of nothing: REMOTE_ERROR',
    ]);
    assert.match(stderr, /\[calc\] stats: stats of no values/);
    assert.match(stderr, /\[run\] calc exited \(code 0\)/);
  });
});

describe('the "python" key of a system spec', () => {
  const file = `${root}examples/polyglot/system.yaml`;
  const codes = (text: string) => parseSystemSpec(text, file).diagnostics.map((d) => d.code);

  it('runs a Python file as a process', () => {
    const { spec, diagnostics } = parseSystemSpec(
      'services:\n  - { name: calc, python: ./calc_service.py, provides: [calc] }\n',
      file,
    );
    assert.deepEqual(diagnostics, []);
    const calc = spec?.services[0];
    assert.equal(calc?.language, 'python');
    assert.equal(calc?.isolation, 'process');
    assert.equal(calc?.module, `${root}examples/polyglot/calc_service.py`);
  });

  it('refuses a missing file, "module" beside it, and a thread', () => {
    assert.deepEqual(codes('services:\n  - { name: a, python: ./missing.py }\n'), [
      'SPEC_MODULE_NOT_FOUND',
    ]);
    assert.deepEqual(
      codes('services:\n  - { name: a, python: ./calc_service.py, module: ./client.ts }\n'),
      ['SPEC_BAD_VALUE'],
    );
    assert.deepEqual(
      codes('services:\n  - { name: a, python: ./calc_service.py, isolation: thread }\n'),
      ['SPEC_BAD_VALUE'],
    );
  });
});
