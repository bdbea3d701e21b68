import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import {
  Channel,
  type IpcError,
  isIpcError,
  spawnProcess,
  spawnWorker,
} from '../../../src/index.js';
import { alive, failure } from '../spawn-helpers.js';
import { child } from './helpers.js';

function pidOf(error: IpcError): number {
  const pid = /\(pid (\d+)\)/.exec(error.message)?.[1];
  assert.ok(pid !== undefined, error.message);
  return Number(pid);
}

describe('spawnProcess failures', () => {
  it('kills and reaps a child that never calls parentChannels(), and says so', async () => {
    const [mine, theirs] = Channel.pair();
    const error = await failure(
      spawnProcess(child('idle'), {
        channels: { work: theirs },
        stdio: 'pipe',
        handshakeTimeoutMs: 500,
      }),
      'TIMEOUT',
    );
    assert.match(error.message, /did not call parentChannels\(\) in time .*it was killed/);
    assert.match(error.message, /idle\.js/);
    // Reaped before the rejection: no process by that id is left.
    assert.equal(alive(pidOf(error)), false);
    // Its channel went down with it.
    await assert.rejects(mine.recv(), (e: unknown) => isIpcError(e, 'PEER_CLOSED'));
  });

  it('reports a child that exits first with its code and the first lines of its stderr', async () => {
    const error = await failure(
      spawnProcess(child('early-exit'), { stdio: 'pipe' }),
      'CONNECTION_FAILED',
    );
    assert.match(error.message, /exited with code 3 before calling parentChannels\(\)/);
    assert.match(error.message, /its stderr began:\n {2}early-exit: cannot read my config/);
    assert.equal(alive(pidOf(error)), false);
  });

  it('reports a child killed by a signal before it took its channels', async () => {
    const error = await failure(
      spawnProcess(child('early-exit'), { stdio: 'pipe', args: ['signal'] }),
      'CONNECTION_FAILED',
    );
    assert.match(error.message, /was killed by SIGTERM before calling parentChannels\(\)/);
  });

  it('reports a module that fails to load with the loader error from its stderr', async () => {
    const error = await failure(
      spawnProcess(child('bad-import'), { stdio: 'pipe' }),
      'CONNECTION_FAILED',
    );
    assert.match(error.message, /exited with code 1/);
    assert.match(error.message, /ERR_MODULE_NOT_FOUND|Cannot find module/);
  });

  it("gives as the cause of a failed import the child's own error, not the socket's reset", async () => {
    const error = await failure(
      spawnProcess(child('bad-import'), { stdio: 'pipe' }),
      'CONNECTION_FAILED',
    );
    const cause = error.cause as NodeJS.ErrnoException;
    assert.equal(cause.code, 'ERR_MODULE_NOT_FOUND', cause.message);
    assert.match(
      cause.message,
      /^Error \[ERR_MODULE_NOT_FOUND\]: Cannot find module .*no-such-module\.js/,
    );
    assert.match(
      error.message,
      /exited with code 1 before calling parentChannels\(\): Error \[ERR_MODULE_NOT_FOUND\]: Cannot find module/,
    );
    // Without its stderr, the cause is the exit: what spawnWorker's cause is to a thread.
    const blind = await failure(
      spawnProcess(child('bad-import'), { stdio: 'ignore' }),
      'CONNECTION_FAILED',
    );
    assert.equal((blind.cause as Error).message, 'the child process exited with code 1');
    assert.doesNotMatch(blind.message, /ECONNRESET/);
  });

  it('names the compiled .js when given a .ts module that is not there, as ftl-ipc run does', async () => {
    const ts = child('echo').replace(/\.js$/, '.ts');
    for (const start of [spawnProcess, spawnWorker]) {
      const error = await failure(start(pathToFileURL(ts)), 'INVALID_ARGUMENT');
      assert.ok(error.message.startsWith(`${start.name}: module ${ts} not found; `), error.message);
      assert.match(error.message, /a \.ts module runs from its compiled \.js: name the \.js/);
      assert.match(error.message, /new URL\('\.\/echo\.js', import\.meta\.url\)/);
      assert.ok(error.message.endsWith(`; ${child('echo')} exists`), error.message);
    }
  });

  it('says where the stderr went when it is not piped', async () => {
    const error = await failure(
      spawnProcess(child('early-exit'), { stdio: 'ignore' }),
      'CONNECTION_FAILED',
    );
    assert.match(error.message, /its stderr was ignored/);
  });

  it('rejects a module that does not exist before starting anything, naming the path', async () => {
    const error = await failure(spawnProcess('./no/such/child.js'), 'INVALID_ARGUMENT');
    assert.ok(error.message.includes(`${process.cwd()}/no/such/child.js not found`), error.message);
    assert.match(error.message, /new URL\('\.\/no\/such\/child\.js', import\.meta\.url\)/);
  });

  it('takes a file URL for a module beside the caller', async () => {
    const [mine, theirs] = Channel.pair();
    const proc = await spawnProcess(pathToFileURL(child('echo')), { channels: { relay: theirs } });
    mine.send({ type: 7 });
    assert.equal((await mine.recv()).type, 7);
    mine.close();
    await proc.exited;
  });

  it('names a channel that cannot be handed over before starting anything', async () => {
    const [dead] = Channel.pair();
    dead.close();
    const error = await failure(
      spawnProcess(child('echo'), { channels: { dead } }),
      'HANDLE_NOT_MOVABLE',
    );
    assert.equal(error.message, 'spawnProcess: channels.dead is closed or was already moved');
    await failure(
      spawnProcess(child('echo'), { channels: { x: 'nope' as unknown as Channel } }),
      'INVALID_ARGUMENT',
    );
  });
});
