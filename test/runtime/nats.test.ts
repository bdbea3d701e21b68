import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { Svcm } from '@nats-io/services';
import { connect as natsConnect } from '@nats-io/transport-node';
import { parseSystemSpec } from '../../src/index.js';
import { type NatsServer, natsSuite, startNats } from '../transport/nats/server.js';
import { fixture, Run, root } from './helpers.js';

const BIN = `${root}dist/src/cli/main.js`;

/** `ftl-ipc run spec` with FTL_NATS_URL and a shared FTL_NATS_SECRET; collects what it prints. */
function run(spec: string, url: string): { child: ChildProcess; out: string[]; err: string[] } {
  const child = spawn(process.execPath, [BIN, 'run', spec], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, FTL_NATS_URL: url, FTL_NATS_SECRET: 'runtime test' },
  });
  const out: string[] = [];
  const err: string[] = [];
  child.stdout!.setEncoding('utf8').on('data', (t: string) => out.push(t));
  child.stderr!.setEncoding('utf8').on('data', (t: string) => err.push(t));
  return { child, out, err };
}

async function until(what: string, ok: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('systems joined over NATS', natsSuite, () => {
  let server: NatsServer;
  before(async () => {
    // The systems in this process protect their links with it (children get it from run()).
    process.env.FTL_NATS_SECRET = 'runtime test';
    server = await startNats();
  });
  after(async () => {
    delete process.env.FTL_NATS_SECRET;
    await server.stop();
  });

  it('a dependency no local service provides is resolved over NATS only with a server', () => {
    const text = `nats: [nats://a:4222, nats://b:4222]
services:
  - { name: c, module: ${root}examples/ping/client.ts, depends: [{ name: ping, protocol: ping }] }
`;
    const saved = process.env.FTL_NATS_URL;
    delete process.env.FTL_NATS_URL;
    try {
      const { spec } = parseSystemSpec(text, `${root}x.yaml`);
      assert.deepEqual(spec?.nats, ['nats://a:4222', 'nats://b:4222']);
      assert.deepEqual(spec?.services[0]?.depends[0], {
        name: 'ping',
        protocol: 'ping',
        service: '',
        remote: true,
      });
      const without = parseSystemSpec(text.replace(/^nats.*\n/, ''), `${root}x.yaml`);
      assert.equal(without.diagnostics[0]?.code, 'SPEC_UNKNOWN_PROTOCOL');
      process.env.FTL_NATS_URL = 'nats://c:4222';
      assert.deepEqual(parseSystemSpec(text, `${root}x.yaml`).spec?.nats, ['nats://c:4222']);
      const bad = parseSystemSpec(`nats: 3\n${text.split('\n').slice(1).join('\n')}`, 'x.yaml');
      assert.equal(bad.diagnostics.length, 0, 'FTL_NATS_URL wins over the spec');
    } finally {
      if (saved === undefined) delete process.env.FTL_NATS_URL;
      else process.env.FTL_NATS_URL = saved;
    }
  });

  it('two ftl-ipc run processes: the client in one reaches the server in the other', async () => {
    const host = run(`${root}examples/two-host/server.yaml`, server.url);
    const exitedHost = once(host.child, 'exit');
    await until('the server offered over NATS', () => host.err.join('').includes('offering ping'));
    // The NATS service API sees it, as `nats micro ls` would.
    const nc = await natsConnect({ servers: server.url });
    const infos = [];
    for await (const info of await new Svcm(nc as never).client().info('ping')) infos.push(info);
    assert.equal(infos.length, 1);
    assert.equal(infos[0]?.name, 'ping');
    assert.equal(infos[0]?.metadata?.['ftl-ipc.system'], 'ping-server');
    await nc.close();

    const client = run(`${root}examples/two-host/client.yaml`, server.url);
    const [code] = await once(client.child, 'exit');
    assert.equal(code, 0, client.err.join(''));
    assert.match(client.out.join(''), /pong 1\n.*pong 3\n.*pong 6\n/s);

    host.child.kill('SIGTERM');
    assert.deepEqual(await exitedHost, [0, null], host.err.join(''));
  });

  // Both in threads: the end that crossed NATS moves into the provider's worker through a relay.
  for (const isolation of ['process', 'thread'] as const) {
    it(`a provider that crashes and restarts in one system is reached again from the other (both in a ${isolation})`, async () => {
      const servers = new Run(`nats: ${server.url}
services:
  - { name: server, module: ${fixture('crashy-server')}, provides: [ping], isolation: ${isolation}, restart: { policy: on-failure, backoffMs: 50 } }
`);
      const clients = new Run(`nats: ${server.url}
services:
  - { name: client, module: ${fixture('reconnecting-client')}, isolation: ${isolation}, depends: [{ name: ping, protocol: ping }] }
`);
      try {
        await clients.waitFor(/before 1 2/, 20_000);
        await clients.waitFor(/crash seen: PEER_CLOSED/);
        await clients.waitFor(/after 1/, 20_000);
        await servers.waitFor(/asked to crash/);
      } finally {
        await clients.system.stop(500);
        await servers.system.stop(500);
      }
    });
  }

  for (const [hoarder, flooder] of [
    ['process', 'process'],
    ['thread', 'process'],
    ['process', 'thread'],
    ['thread', 'thread'],
  ] as const) {
    it(`backpressure crosses systems (server in a ${hoarder}, client in a ${flooder}): exactly the capacity`, async () => {
      const servers = new Run(`nats: ${server.url}
services:
  - { name: hoarder, module: ${fixture('hoarder')}, provides: [sink], isolation: ${hoarder} }
`);
      const clients = new Run(`nats: ${server.url}
services:
  - { name: flooder, module: ${fixture('flooder')}, isolation: ${flooder}, depends: [{ name: flood, protocol: sink, capacity: 4 }] }
`);
      try {
        const [, sent] = await clients.waitFor(/sent (\d+) before BACKPRESSURE/, 20_000);
        assert.equal(sent, '4', clients.lines.join('\n'));
        await servers.waitFor(/holding a client/);
      } catch (err) {
        throw new Error(
          `${(err as Error).message}\nthe server system:\n${servers.lines.join('\n')}`,
        );
      } finally {
        await clients.system.stop(500);
        await servers.system.stop(500);
      }
    });
  }
});
