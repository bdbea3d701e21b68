import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { main } from '../../src/cli/main.js';
import { cargo, noCargo, rustDir } from './cargo.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const run = promisify(execFile);

/** Each `node dist/src/cli/main.js gen --lang rust ...` command of `npm run gen:rust`. */
function rustGenCommands(): string[][] {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
    scripts: Record<string, string>;
  };
  return pkg.scripts['gen:rust']!.split(' && ').map((c) => c.split(' ').slice(2));
}

describe('rust', () => {
  it('npm run gen:rust: the committed generated Rust matches the IDL', async () => {
    const cwd = process.cwd();
    // Paths in generated headers are relative, so the check runs from the repository root.
    process.chdir(root);
    try {
      for (const args of rustGenCommands()) {
        assert.deepEqual(args.slice(0, 3), ['gen', '--lang', 'rust']);
        let err = '';
        const status = await main([...args, '--check'], { out: () => {}, err: (t) => (err += t) });
        assert.equal(status, 0, err);
      }
    } finally {
      process.chdir(cwd);
    }
  });

  it('cargo test in rust/: the shared vectors, the fuzz corpus and the crate tests', {
    skip: noCargo,
    timeout: 600_000,
  }, async () => {
    const { stdout, stderr } = await run(cargo!, ['test', '--offline', '--release'], {
      cwd: rustDir,
      maxBuffer: 16 * 1024 * 1024,
    }).catch((error: { stdout?: string; stderr?: string; message: string }) => {
      throw new Error(
        `cargo test failed:\n${error.stderr ?? ''}\n${error.stdout ?? error.message}`,
      );
    });
    assert.match(stdout, /test result: ok/);
    assert.doesNotMatch(stdout + stderr, /test result: FAILED/);
  });
});
