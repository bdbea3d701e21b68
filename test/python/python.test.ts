import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Channel, IPC_ERROR_CODES, spawnProcess } from 'ftl-ipc';
import { main } from '../../src/cli/main.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const run = promisify(execFile);

/** Each `node dist/src/cli/main.js gen --lang python ...` command of `npm run gen:python`. */
function pythonGenCommands(): string[][] {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
    scripts: Record<string, string>;
  };
  return pkg.scripts['gen:python']!.split(' && ').map((c) => c.split(' ').slice(2));
}

describe('python', () => {
  it('npm run gen:python: the committed generated Python matches the IDL', async () => {
    const cwd = process.cwd();
    // Paths in generated headers are relative, so the check runs from the repository root.
    process.chdir(root);
    try {
      for (const args of pythonGenCommands()) {
        assert.deepEqual(args.slice(0, 3), ['gen', '--lang', 'python']);
        let err = '';
        const status = await main([...args, '--check'], { out: () => {}, err: (t) => (err += t) });
        assert.equal(status, 0, err);
      }
    } finally {
      process.chdir(cwd);
    }
  });

  it('the Python error codes are the TypeScript ones, in order', async () => {
    const { stdout } = await run(
      'python3',
      ['-c', 'import json, ftl_ipc; print(json.dumps(ftl_ipc.IPC_ERROR_CODES))'],
      { cwd: join(root, 'python') },
    );
    assert.deepEqual(JSON.parse(stdout), [...IPC_ERROR_CODES]);
  });

  it('the Python unittest suite passes (python3, standard library only)', async () => {
    // node must be on PATH for the suite's TypeScript peers: the one running this test.
    const env = { ...process.env, FTL_IPC_NODE: process.execPath, PYTHONDONTWRITEBYTECODE: '1' };
    try {
      const { stderr } = await run(
        'python3',
        ['-m', 'unittest', 'discover', '-s', 'tests', '-t', '.'],
        {
          cwd: join(root, 'python'),
          env,
          maxBuffer: 16 * 1024 * 1024,
        },
      );
      assert.match(stderr, /\nOK/);
    } catch (error) {
      const e = error as { stdout?: string; stderr?: string };
      assert.fail(`python3 -m unittest failed:\n${e.stderr ?? ''}${e.stdout ?? ''}`);
    }
  });

  it('spawnProcess starts a Python child whose parent_channels() gives it its channels', async () => {
    const [mine, theirs] = Channel.pair({ capacity: 4 });
    const { exited } = await spawnProcess(join(root, 'python/tests/child_echo.py'), {
      executable: 'python3',
      channels: { jobs: theirs },
      env: { ...process.env, PYTHONPATH: join(root, 'python') },
    });
    // More than the capacity, sent while the replies are read: the bound holds both ways.
    const sending = (async () => {
      for (let i = 0; i < 20; i++) await mine.sendWait({ type: i, data: Buffer.from(`job ${i}`) });
    })();
    for (let i = 0; i < 20; i++) {
      const m = await mine.recv();
      assert.equal(m.type, i + 1);
      assert.equal(Buffer.from(m.data).toString(), [...`job ${i}`].reverse().join(''));
    }
    await sending;
    assert.ok(mine.stats.highWaterMark <= 4);
    mine.close();
    assert.deepEqual(await exited, { code: 0, signal: null });
  });
});
