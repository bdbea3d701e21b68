import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { describe, it } from 'node:test';
import { Channel, listen, spawnProcess } from '../../../src/index.js';
import { encodeHello } from '../../../src/transport/socket/frame.js';
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
      // Only an upper bound here: the silence began at the child's last frame, which a loaded
      // machine may have sent well before the stop. The lower bound is the next test's.
      const took = Date.now() - stoppedAt;
      assert.ok(took < 2000, `detected after ${took} ms`);
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

  it('the heartbeat timeout waits for the whole silence: never before heartbeatTimeoutMs', async () => {
    const listener = await listen(
      { host: '127.0.0.1', port: 0 },
      { heartbeatMs: 50, heartbeatTimeoutMs: 400 },
    );
    const port = (listener.address as { port: number }).port;
    // A raw peer that announces a heartbeat, then never sends another byte after its HELLO.
    const raw = net.connect(port, '127.0.0.1');
    raw.on('error', () => {});
    raw.resume();
    const closed = new Promise<number>((resolve) => raw.once('close', () => resolve(Date.now())));
    await new Promise((resolve) => raw.once('connect', resolve));
    const seen = socketErrors();
    try {
      // Its last frame cannot arrive before it is written: the silence starts after this.
      const silentFrom = Date.now();
      raw.write(
        encodeHello({
          flags: 0,
          nonce: randomBytes(32),
          limits: { capacity: 4, capacityBytes: 1024, maxMessageBytes: 512, maxHandles: 4 },
          heartbeatMs: 1000,
        }),
      );
      const root = (await listener.accept()) as Channel;
      const took = (await closed) - silentFrom;
      assert.ok(took >= 400 && took < 3000, `closed after ${took} ms of silence`);
      assert.equal(await root.closed, 'peer');
      assert.equal(seen.errors[0]?.code, 'TIMEOUT');
    } finally {
      seen.stop();
    }
    await listener.close();
  });
});
