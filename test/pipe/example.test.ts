import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

it('examples/pipe-copy copies a file between two workers byte for byte', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ftl-ipc-example-'));
  try {
    const source = join(dir, 'in.bin');
    const copy = join(dir, 'out.bin');
    writeFileSync(source, randomFillSync(new Uint8Array(5 * 1024 * 1024 + 123)));
    const main = fileURLToPath(new URL('../../examples/pipe-copy/main.js', import.meta.url));
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [main, source, copy]);
    assert.match(stdout, /sha256 matches/);
    assert.match(stderr, /\[#{40}\] 5\/5 MiB/);
    assert.deepEqual(readFileSync(copy), readFileSync(source));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
