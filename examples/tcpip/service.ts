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
import { ConnectionServer, ListenServer, serveControl } from './tcpip.generated.js';

interface Config {
  host?: string;
  backlog?: number;
  buffer?: number;
}

/** How long a new connection may wait for room in a full backlog before it is reset. */
const ACCEPT_WAIT_MS = 1000;

/** Largest `tcp_received` payload: the IDL allows 64 KiB, and the message header must fit too. */
const SEGMENT = 32 * 1024;

export default async function main(env: ServiceEnv<Config>): Promise<void> {
  const servers = new Set<net.Server>();
  env.signal.addEventListener('abort', () => {
    for (const server of servers) server.close();
  });
  const clients: Promise<void>[] = [];
  for await (const control of env.clients()) clients.push(serveClient(env, control, servers));
  await Promise.allSettled(clients);
}

/** Serves one application's control channel; its listeners close when it goes away. */
async function serveClient(
  env: ServiceEnv<Config>,
  control: Channel,
  servers: Set<net.Server>,
): Promise<void> {
  const { config } = env;
  const mine = new Set<net.Server>();
  await serveControl(
    control,
    {
      tcpListen: async ({ port }) => {
        const server = net.createServer({ allowHalfOpen: true, noDelay: true });
        const host = config.host ?? '127.0.0.1';
        server.listen({ port, host, backlog: config.backlog ?? 128 });
        await once(server, 'listening');
        servers.add(server);
        mine.add(server);
        const [appEnd, serviceEnd] = Channel.pair({ capacity: config.backlog ?? 128 });
        // The backlog as the live page and /metrics show it: sends that found it full.
        env.observe(`listen:${port}`, serviceEnd);
        accept(server, new ListenServer(serviceEnd), config.buffer ?? 32);
        console.log(`listening on ${host}:${(server.address() as net.AddressInfo).port}`);
        return { listen: appEnd };
      },
    },
    // A port in use is the caller's problem (it gets the error as the reply), not a crash.
    { onError: () => {} },
  ).catch(() => {});
  for (const server of mine) server.close();
}

function accept(server: net.Server, listen: ListenServer, buffer: number): void {
  server.on('connection', async (socket) => {
    socket.on('error', () => {});
    const [appEnd, serviceEnd] = Channel.pair({ capacity: buffer });
    try {
      // Room in the backlog may take a moment to show (the listen channel may still be on its
      // way to the application); past that, a full backlog refuses the connection, as a stack
      // drops a SYN it has no room for.
      await listen.tcpAcceptedWait({ conn: appEnd }, { timeoutMs: ACCEPT_WAIT_MS });
    } catch {
      appEnd.close();
      serviceEnd.close();
      socket.resetAndDestroy();
      return;
    }
    void pipe(socket, new ConnectionServer(serviceEnd));
  });
  // The application closed its listen channel: stop listening.
  void listen.channel.closed.then(() => server.close());
}

/** Moves bytes both ways until both directions are done, then closes both sides. */
async function pipe(socket: net.Socket, conn: ConnectionServer): Promise<void> {
  await Promise.allSettled([socketToChannel(socket, conn), channelToSocket(conn, socket)]);
  conn.close();
  socket.destroy();
}

async function socketToChannel(socket: net.Socket, conn: ConnectionServer): Promise<void> {
  try {
    // Reading with `for await` pulls one chunk at a time: while sendWait waits for room in the
    // connection channel, the socket is not read and its kernel buffer fills. The remote's end
    // of sending must not destroy the socket: the application may still answer.
    const chunks = socket.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>;
    for await (const chunk of chunks) {
      for (let at = 0; at < chunk.byteLength; at += SEGMENT) {
        await conn.tcpReceivedWait({ data: chunk.subarray(at, at + SEGMENT) });
      }
    }
  } catch {
    // A reset connection ends the stream like a close.
  }
  await conn.tcpClosedWait().catch(() => {});
}

async function channelToSocket(conn: ConnectionServer, socket: net.Socket): Promise<void> {
  // Handlers run one at a time: while the socket's write buffer is full this stops reading the
  // channel, so the application's sends back up and its backpressure is the remote reader's pace.
  await conn
    .serve({
      tcpSend: async ({ data }) => {
        if (!socket.write(data)) await Promise.race([once(socket, 'drain'), once(socket, 'close')]);
      },
    })
    .catch(() => {});
  // Destroying before the last writes are flushed would cut the response short.
  socket.end();
  await Promise.race([once(socket, 'finish'), once(socket, 'close')]);
}
