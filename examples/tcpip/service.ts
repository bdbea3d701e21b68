/**
 * The tcpip service: real TCP sockets bridged to channels, in FTL's shape. The listen channel's
 * queue is the accept backlog and a connection channel's queue is the TCP receive buffer: while
 * the application does not read, this service does not read the socket, so the kernel's buffers
 * fill and TCP flow control holds the remote sender back. Nothing is dropped on the way.
 *
 * Config: `host` to bind (default 127.0.0.1), `backlog` (default 128) and `buffer` (messages a
 * connection channel holds, default 32).
 */
import { once } from 'node:events';
import net from 'node:net';
import { Channel, type ServiceEnv } from 'ftl-ipc';
import {
  decodePort,
  encodePort,
  encodeText,
  TCP_ACCEPTED,
  TCP_CLOSED,
  TCP_ERROR,
  TCP_LISTEN,
  TCP_LISTEN_REPLY,
  TCP_RECEIVED,
  TCP_SEND,
} from './protocol.js';

interface Config {
  host?: string;
  backlog?: number;
  buffer?: number;
}

/** Largest `tcp_received` payload: the channel's default message limit. */
const SEGMENT = 64 * 1024;

export default async function main(env: ServiceEnv<Config>): Promise<void> {
  const servers = new Set<net.Server>();
  env.signal.addEventListener('abort', () => {
    for (const server of servers) server.close();
  });
  const clients: Promise<void>[] = [];
  for await (const control of env.clients()) clients.push(serveControl(env, control, servers));
  await Promise.allSettled(clients);
}

async function serveControl(
  env: ServiceEnv<Config>,
  control: Channel,
  servers: Set<net.Server>,
): Promise<void> {
  const mine = new Set<net.Server>();
  for await (const m of control) {
    if (m.type !== TCP_LISTEN) continue;
    try {
      const server = await listen(env.config, decodePort(m.data));
      const address = server.address() as net.AddressInfo;
      const [appEnd, serviceEnd] = Channel.pair({ capacity: env.config.backlog ?? 128 });
      servers.add(server);
      mine.add(server);
      accept(server, serviceEnd, env.config.buffer ?? 32);
      await control.sendWait({
        type: TCP_LISTEN_REPLY,
        data: encodePort(address.port),
        handles: [appEnd],
      });
    } catch (error) {
      await control.sendWait({ type: TCP_ERROR, data: encodeText(String(error)) });
    }
  }
  // The application is gone (or restarting): its ports are free again.
  for (const server of mine) server.close();
  control.close();
}

async function listen(config: Config, port: number): Promise<net.Server> {
  const server = net.createServer({ allowHalfOpen: true, noDelay: true });
  server.listen({ port, host: config.host ?? '127.0.0.1', backlog: config.backlog ?? 128 });
  await once(server, 'listening');
  return server;
}

function accept(server: net.Server, listen: Channel, buffer: number): void {
  server.on('connection', (socket) => {
    const [appEnd, serviceEnd] = Channel.pair({ capacity: buffer });
    const remote = encodeText(`${socket.remoteAddress}:${socket.remotePort}`);
    // The backlog is full: refuse, as a stack drops a SYN it has no room for.
    if (!listen.send({ type: TCP_ACCEPTED, data: remote, handles: [appEnd] }, { onFull: 'drop' })) {
      appEnd.close();
      serviceEnd.close();
      socket.resetAndDestroy();
      return;
    }
    void pipe(socket, serviceEnd);
  });
  // The application closed its listen channel: stop listening.
  void listen.closed.then(() => server.close());
}

/** Moves bytes both ways until both directions are done, then closes both sides. */
async function pipe(socket: net.Socket, conn: Channel): Promise<void> {
  socket.on('error', () => {});
  await Promise.allSettled([socketToChannel(socket, conn), channelToSocket(conn, socket)]);
  conn.close();
  socket.destroy();
}

async function socketToChannel(socket: net.Socket, conn: Channel): Promise<void> {
  try {
    // Reading with `for await` pulls one chunk at a time: while sendWait waits for room in the
    // connection channel, the socket is not read and its kernel buffer fills. The remote's end
    // of sending must not destroy the socket: the application may still answer.
    const chunks = socket.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>;
    for await (const chunk of chunks) {
      for (let at = 0; at < chunk.byteLength; at += SEGMENT) {
        await conn.sendWait({ type: TCP_RECEIVED, data: chunk.subarray(at, at + SEGMENT) });
      }
    }
  } catch {
    // A reset connection ends the stream like a close.
  }
  await conn.sendWait({ type: TCP_CLOSED }).catch(() => {});
}

async function channelToSocket(conn: Channel, socket: net.Socket): Promise<void> {
  try {
    for await (const m of conn) {
      // While the socket's write buffer is full this stops reading the channel, so the
      // application's sends back up: its backpressure is the remote reader's pace.
      if (m.type === TCP_SEND && !socket.write(m.data)) {
        await Promise.race([once(socket, 'drain'), once(socket, 'close')]);
      }
    }
  } catch {
    // The socket failed while draining; the read side reports tcp_closed.
  }
  // Destroying before the last writes are flushed would cut the response short.
  socket.end();
  await Promise.race([once(socket, 'finish'), once(socket, 'close')]);
}
