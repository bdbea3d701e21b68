import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { Channel, listen, spawnProcess } from '../../../src/index.js';
import { delivered, rejectsCode } from '../../channel/helpers.js';
import { child, socketErrors } from './helpers.js';

function exited(proc: ChildProcess): Promise<unknown> {
  return new Promise((resolve) => proc.once('exit', resolve));
}

describe('peer death', () => {
  it('kill -9: every channel sees PEER_CLOSED within 1 s, after what arrived is delivered', async () => {
    const [out, outThere] = Channel.pair({ capacity: 64 });
    const [idle, idleThere] = Channel.pair();
    const proc = await spawnProcess(child('sender'), {
      channels: { out: outThere, idle: idleThere },
      args: ['20'],
    });
    await delivered(out, 20);
    const killedAt = Date.now();
    proc.child.kill('SIGKILL');
    assert.deepEqual(await Promise.all([out.closed, idle.closed]), ['peer', 'peer']);
    const took = Date.now() - killedAt;
    assert.ok(took < 1000, `PEER_CLOSED took ${took} ms`);
    for (let i = 0; i < 20; i++) assert.equal((await out.recv()).type, i);
    await rejectsCode(out.recv(), 'PEER_CLOSED');
    await rejectsCode(idle.recv(), 'PEER_CLOSED');
    assert.equal((await proc.exited).signal, 'SIGKILL');
  });

  it('a silent TCP peer (stopped, its socket half-open) is detected by the heartbeat', async () => {
    const listener = await listen(
      { host: '127.0.0.1', port: 0 },
      { heartbeatMs: 50, heartbeatTimeoutMs: 400 },
    );
    const port = (listener.address as { port: number }).port;
    const arg = JSON.stringify({
      address: { host: '127.0.0.1', port },
      count: 3,
      options: { heartbeatMs: 50 },
    });
    const proc = spawn(process.execPath, [child('connector'), arg], { stdio: 'inherit' });
    const gone = exited(proc);
    const root = (await listener.accept()) as Channel;
    await delivered(root, 3);
    // Alive and idle: heartbeats keep the connection up well past the timeout.
    await new Promise((resolve) => setTimeout(resolve, 600));
    assert.equal(root.stats.queuedMessages, 3);
    const seen = socketErrors();
    try {
      proc.kill('SIGSTOP');
      const stoppedAt = Date.now();
      assert.equal(await root.closed, 'peer');
      const took = Date.now() - stoppedAt;
      assert.ok(took >= 300 && took < 2000, `detected after ${took} ms`);
      assert.equal(seen.errors[0]?.code, 'TIMEOUT');
      assert.match(seen.errors[0]?.message ?? '', /no heartbeat from 127\.0\.0\.1:\d+ for 400 ms/);
    } finally {
      seen.stop();
      proc.kill('SIGKILL');
    }
    for (let i = 0; i < 3; i++) assert.equal((await root.recv()).type, i);
    root.close();
    await listener.close();
    await gone;
  });
});
