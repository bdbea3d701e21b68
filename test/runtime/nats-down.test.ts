/** A system whose NATS server is not up yet, or goes away: the log says what the runtime does. */
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { connect } from '../../src/index.js';
import { type NatsServer, natsSuite, startNats } from '../transport/nats/server.js';
import { failure } from '../transport/spawn-helpers.js';
import { fixture, Run } from './helpers.js';

/** A loopback port nothing listens on (free a moment ago). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('connect over NATS with no server', () => {
  it('fails at once, saying that it made one attempt and how to make it wait', async () => {
    const url = `nats://127.0.0.1:${await freePort()}`;
    const error = await failure(
      connect({ nats: url, service: 'ping' }, { insecure: true }),
      'CONNECTION_FAILED',
    );
    assert.equal(
      error.message,
      `cannot connect to NATS ${url}: connection refused (one attempt; with waitOnFirstConnect: true in the NATS options it tries again every reconnectTimeWait, 250 ms here, until a server answers)`,
    );
  });
});

describe('a system whose NATS server is down', { ...natsSuite, timeout: 60_000 }, () => {
  it('says it retries every 2 s without limit, links once a server is up, and says when it is lost', async () => {
    const port = await freePort();
    const url = `nats://127.0.0.1:${port}`;
    // The systems of this process key their links with it.
    process.env.FTL_NATS_SECRET = 'nats-down test';
    const client = new Run(`nats: ${url}
services:
  - { name: client, module: ${fixture('pinger')}, isolation: process, depends: [{ name: echo, protocol: echo }] }
`);
    let nats: NatsServer | undefined;
    let server: Run | undefined;
    try {
      const [line] = await client.waitFor(/^\[nats\] cannot connect to NATS.*/);
      assert.equal(
        line,
        `[nats] cannot connect to NATS ${url}: connection refused; retrying every 2 s until a server answers, without limit (nothing is offered or linked over NATS meanwhile; stop the run to give up)`,
      );
      nats = await startNats(undefined, ['-p', String(port)]);
      assert.equal(nats.url, url);
      await client.waitFor(
        /^\[nats\] connected to NATS nats:\/\/127\.0\.0\.1:\d+ \(attempt \d+\)$/,
        10_000,
      );
      server = new Run(`nats: ${url}
services:
  - { name: echo, module: ${fixture('echo-server')}, isolation: process, provides: [echo] }
`);
      await client.waitFor(/^\[nats\] client: echo linked to echo over NATS$/, 20_000);
      await nats.kill();
      nats = undefined;
      await client.waitFor(
        /^\[nats\] lost NATS 127\.0\.0\.1:\d+; reconnecting to nats:\/\/127\.0\.0\.1:\d+ every 2 s, without limit$/,
        10_000,
      );
    } finally {
      delete process.env.FTL_NATS_SECRET;
      await client.system.stop(500);
      await server?.system.stop(500);
      await nats?.stop();
    }
  });
});
