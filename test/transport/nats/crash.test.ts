import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Channel, listen } from '../../../src/index.js';
import { delivered, rejectsCode } from '../../channel/helpers.js';
import { type NatsServer, natsSuite, startNats } from './server.js';

const sender = fileURLToPath(new URL('./children/sender.js', import.meta.url));

describe('peer death over NATS', natsSuite, () => {
  let server: NatsServer;
  before(async () => {
    server = await startNats();
  });
  after(() => server.stop());

  it('kill -9: PEER_CLOSED within the heartbeat timeout, after what arrived is delivered', async () => {
    const listener = await listen(
      { nats: server.url, service: 'crash' },
      { capacity: 64, heartbeatMs: 100, heartbeatTimeoutMs: 500, secret: 'crash' },
    );
    const proc = spawn(process.execPath, [sender, server.url, 'crash', '20', 'crash'], {
      stdio: 'inherit',
    });
    const exited = new Promise((resolve) => proc.once('exit', (_code, signal) => resolve(signal)));
    const ch = (await listener.accept()) as Channel;
    await delivered(ch, 20);
    const killedAt = Date.now();
    proc.kill('SIGKILL');
    assert.equal(await ch.closed, 'peer');
    const took = Date.now() - killedAt;
    assert.ok(took < 1500, `PEER_CLOSED took ${took} ms (timeout 500 ms)`);
    for (let i = 0; i < 20; i++) assert.equal((await ch.recv()).type, i);
    await rejectsCode(ch.recv(), 'PEER_CLOSED');
    assert.equal(await exited, 'SIGKILL');
    await listener.close();
  });
});
