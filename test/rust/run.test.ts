import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseSystemSpec } from 'ftl-ipc';
import { cargo, noCargo, rustDir } from './cargo.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const run = promisify(execFile);

describe('the "rust" key of a system spec', () => {
  const file = `${root}examples/polyglot/system-rust.yaml`;
  const diagnostics = (text: string) => parseSystemSpec(text, file).diagnostics;

  it('ftl-ipc run starts the Rust service, the TypeScript client calls it, and all stop', {
    skip: noCargo,
    timeout: 600_000,
  }, async () => {
    await run(cargo!, ['build', '--offline', '--release', '--examples'], { cwd: rustDir });
    const { stdout, stderr } = await run(
      process.execPath,
      ['dist/src/cli/main.js', 'run', '--no-status', 'examples/polyglot/system-rust.yaml'],
      { cwd: root, timeout: 60_000 },
    );
    assert.deepEqual(stdout.trim().split('\n'), [
      '[client] add: 2^40 + 2 = 1099511627778',
      '[client] stats: 4 values, mean 2.625',
      '[client] shout: HELLO FROM TYPESCRIPT!',
      '[client] stats of nothing: REMOTE_ERROR',
    ]);
    assert.match(stderr, /\[run\] calc exited \(code 0\)/);
  });

  it('runs a built binary as a process; a missing one says to build it; one key only, no thread', () => {
    const { spec } = parseSystemSpec(
      'services:\n  - { name: calc, rust: ./calc_service.rs, provides: [calc] }\n',
      file,
    );
    assert.equal(spec?.services[0]?.language, 'rust');
    assert.equal(spec?.services[0]?.isolation, 'process');
    const missing = diagnostics('services:\n  - { name: a, rust: ./target/nothing }\n');
    assert.deepEqual(
      missing.map((d) => d.code),
      ['SPEC_MODULE_NOT_FOUND'],
    );
    assert.match(missing[0]!.message, /build it first \(cargo build --release\)/);
    assert.deepEqual(
      diagnostics(
        'services:\n  - { name: a, rust: ./calc_service.rs, python: ./calc_service.py }\n',
      ).map((d) => d.code),
      ['SPEC_BAD_VALUE'],
    );
    assert.deepEqual(
      diagnostics('services:\n  - { name: a, rust: ./calc_service.rs, isolation: thread }\n').map(
        (d) => d.code,
      ),
      ['SPEC_BAD_VALUE'],
    );
  });
});
