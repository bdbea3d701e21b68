/**
 * A TCP echo server written against the tcpip service: it listens on `config.port` (0: any free
 * port), prints where, and sends every connection's bytes back until the peer closes.
 */
import type { Channel, ServiceEnv } from 'ftl-ipc';
import { TCP_CLOSED, TCP_RECEIVED, TCP_SEND, tcpListen } from './protocol.js';

async function echo(conn: Channel): Promise<void> {
  for await (const m of conn) {
    if (m.type === TCP_CLOSED) break;
    // Waiting for room passes the remote reader's pace back to the remote sender.
    if (m.type === TCP_RECEIVED) await conn.sendWait({ type: TCP_SEND, data: m.data });
  }
  conn.close();
}

export default async function main(env: ServiceEnv<{ port?: number }>): Promise<void> {
  const { listen, port } = await tcpListen(env.channel('tcpip'), env.config.port ?? 0);
  console.log(`listening on 127.0.0.1:${port}`);
  env.signal.addEventListener('abort', () => listen.close());
  for await (const accepted of listen) {
    const conn = accepted.handles[0] as Channel;
    void echo(conn).catch(() => conn.close());
  }
}
