/**
 * A TCP echo server written against the tcpip service: it listens on `config.port` (0: any free
 * port; the tcpip service prints which) and sends every connection's bytes back until the peer
 * closes.
 */
import type { Channel, ServiceEnv } from 'ftl-ipc';
import { ConnectionClient, ControlClient, ListenClient } from './tcpip.generated.js';

async function echo(channel: Channel): Promise<void> {
  const conn = new ConnectionClient(channel);
  for await (const event of conn) {
    if (event.kind === 'tcpClosed') break;
    // Waiting for room passes the remote reader's pace back to the remote sender.
    await conn.tcpSendWait({ data: event.value.data });
  }
  conn.close();
}

export default async function main(env: ServiceEnv<{ port?: number }>): Promise<void> {
  const control = new ControlClient(env.channel('tcpip'), { timeoutMs: 5000 });
  const listener = new ListenClient(
    (await control.tcpListen({ port: env.config.port ?? 0 })).listen,
  );
  env.signal.addEventListener('abort', () => listener.close());
  for await (const { value } of listener) void echo(value.conn).catch(() => value.conn.close());
}
