import { existsSync, lstatSync, rmdirSync, unlinkSync } from 'node:fs';
import { chmod, lstat, mkdtemp, stat, unlink } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import tls from 'node:tls';
import { Channel } from '../../channel/channel.js';
import { Deque } from '../../channel/deque.js';
import { IpcError } from '../../errors.js';
import { DirectReads, SocketCarrier } from './carrier.js';
import { Connection, type ConnectionOptions, resolveConnectionOptions } from './connection.js';
import type { SocketEndpoint } from './endpoint.js';

/** Where to listen or connect: a Unix socket path, or a TCP host and port. */
export type SocketAddress = { path: string } | { host: string; port: number };

export interface ListenOptions extends ConnectionOptions {
  /** Serve TLS with these options (key and cert at least). TCP only. */
  tls?: tls.TlsOptions;
  /** Connected channels waiting to be taken; connections beyond this are closed. Default 64. */
  backlog?: number;
}

export interface ConnectOptions extends ConnectionOptions {
  /** Connect with TLS using these options (`ca` for a private CA, `servername`...). */
  tls?: tls.ConnectionOptions;
}

/** The socket paths privateSocketPath made in this process: removed when it exits. */
const madePaths = new Set<string>();
/** Past this many, the paths whose directory is gone already are forgotten. */
let sweepAt = 1024;

/**
 * Creates a directory only this user may enter, for Unix sockets: `<tmp>/ftl-ipc-XXXXXX/<name>`.
 * The directory belongs to this process: when it exits, the socket at the path (if one is left)
 * and the directory (if nothing else is in it) are removed. Removing it earlier yourself is fine.
 */
export async function privateSocketPath(name = 'ipc.sock'): Promise<string> {
  const path = join(await mkdtemp(join(tmpdir(), 'ftl-ipc-')), name);
  if (madePaths.size === 0) process.once('exit', removeMadePaths);
  madePaths.add(path);
  // A long-lived process that makes a path per connection (and removes it) keeps few of them.
  if (madePaths.size >= sweepAt) {
    for (const made of madePaths) if (!existsSync(dirname(made))) madePaths.delete(made);
    sweepAt = Math.max(1024, 2 * madePaths.size);
  }
  return path;
}

/** At exit, so synchronous; a path already removed by its user is skipped. */
function removeMadePaths(): void {
  for (const path of madePaths) {
    for (const remove of [
      () => lstatSync(path).isSocket() && unlinkSync(path),
      () => rmdirSync(dirname(path)),
    ]) {
      try {
        remove();
      } catch {
        // Gone already (ENOENT), or holding what someone else put there (ENOTEMPTY): left alone.
      }
    }
  }
  madePaths.clear();
}

/** Where a listener takes connections from (a socket server, a NATS subject) and how it stops. */
export interface ListenerBinding<A> {
  /** The bound address, as `connect` takes it. */
  address(): A;
  /** What the carrier says it is bound to. */
  serverAddress(): string | net.AddressInfo;
  /** Stops taking new connections. */
  stop(): void;
}

/** Yields one Channel (the root of a new connection) per accepted connection. */
export class Listener<A = SocketAddress> implements AsyncIterable<Channel> {
  readonly #binding: ListenerBinding<A>;
  readonly #ready = new Deque<SocketEndpoint>();
  readonly #waiters = new Deque<(channel: Channel | undefined) => void>();
  readonly #backlog: number;
  #closed = false;

  constructor(binding: ListenerBinding<A>, backlog: number) {
    this.#binding = binding;
    this.#backlog = backlog;
  }

  /** The bound address, as `connect` takes it: `{ path }`, or `{ host, port }` (after port 0). */
  get address(): A {
    return this.#binding.address();
  }

  /** What `net.Server#address()` says: the path, or Node's `AddressInfo` (with `family`). */
  get serverAddress(): string | net.AddressInfo {
    return this.#binding.serverAddress();
  }

  /** The next connected channel; undefined once the listener is closed. */
  accept(): Promise<Channel | undefined> {
    const ready = this.#ready.shift();
    if (ready !== undefined) return Promise.resolve(taken(ready));
    if (this.#closed) return Promise.resolve(undefined);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Channel, void, undefined> {
    for (let ch = await this.accept(); ch !== undefined; ch = await this.accept()) yield ch;
  }

  /** Stops accepting. Channels already taken stay open; those not yet taken are closed. */
  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      for (const root of this.#ready.drain()) root.conn.close();
      for (const w of this.#waiters.drain()) w(undefined);
    }
    this.#binding.stop();
    return Promise.resolve();
  }

  /** @internal A connection finished its handshake: hand it out, queue it, or close it. */
  offer(root: SocketEndpoint): void {
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) waiter(taken(root));
    else if (!this.#closed && this.#ready.length < this.#backlog) this.#ready.push(root);
    // The whole connection, not only its root: a peer must not keep it open by ignoring a CLOSE.
    else root.conn.close();
  }
}

/** The application takes a connection: from now on the peer may open channels up to its budget. */
function taken(root: SocketEndpoint): Channel {
  root.conn.accept();
  return new Channel(root);
}

function assertAddress(address: SocketAddress): void {
  if ('path' in address) {
    if (typeof address.path !== 'string' || address.path === '') {
      throw new IpcError(
        'INVALID_ARGUMENT',
        `path must be a non-empty string, got ${String(address.path)}`,
      );
    }
    return;
  }
  const { host, port } = address as { host: unknown; port: unknown };
  if (
    typeof host !== 'string' ||
    !Number.isInteger(port) ||
    (port as number) < 0 ||
    (port as number) > 65535
  ) {
    throw new IpcError(
      'INVALID_ARGUMENT',
      `expected { path } or { host, port } with a port from 0 to 65535, got host ${String(host)} port ${String(port)}`,
    );
  }
}

/** Refuses a socket directory that other users could enter: they could connect to the socket. */
async function assertPrivateDirectory(path: string): Promise<void> {
  const dir = dirname(path);
  const info = await stat(dir);
  const uid = process.getuid?.();
  if ((uid !== undefined && info.uid !== uid) || (info.mode & 0o077) !== 0) {
    throw new IpcError(
      'INVALID_ARGUMENT',
      `socket directory ${dir} has mode ${(info.mode & 0o777).toString(8)} and owner ${info.uid}; it must belong to this user with no access for others (use privateSocketPath())`,
    );
  }
}

/**
 * Listens on a Unix socket (mode 0600, in a directory only this user may enter) or on TCP.
 * Each connection that completes the handshake yields its root channel. (`listen` in
 * ../address.ts picks this or NATS by the address.)
 */
export async function listenSocket(
  address: SocketAddress,
  options: ListenOptions = {},
): Promise<Listener<SocketAddress>> {
  assertAddress(address);
  resolveConnectionOptions(options);
  refuseTlsOnUnix(address, options);
  if ('path' in address) await assertPrivateDirectory(address.path);
  const onSocket = (socket: net.Socket) => {
    const conn = new Connection(new SocketCarrier(socket), false, options, false);
    conn.handshake(options.handshakeTimeoutMs).then(
      (root) => listener.offer(root),
      // The failure was published on ftl-ipc:socket:error; the listener carries on.
      () => {},
    );
  };
  const server =
    options.tls === undefined
      ? net.createServer(onSocket)
      : tls.createServer(options.tls, onSocket);
  const serverAddress = () => server.address() as string | net.AddressInfo;
  const listener = new Listener<SocketAddress>(
    {
      serverAddress,
      address() {
        const bound = serverAddress();
        return typeof bound === 'string'
          ? { path: bound }
          : { host: bound.address, port: bound.port };
      },
      // net.Server.close() calls back only when every connection has ended; accepted channels
      // outlive the listener, so this returns once it stops listening.
      stop: () => server.listening && server.close(),
    },
    options.backlog ?? 64,
  );
  if ('path' in address) {
    await listenOnPath(server, address.path);
    await chmod(address.path, 0o600);
  } else {
    await bind(server, (done) => server.listen(address.port, address.host, done)).catch(
      (err: Error) => {
        throw new IpcError('CONNECTION_FAILED', `cannot listen: ${err.message}`, { cause: err });
      },
    );
  }
  return listener;
}

function bind(server: net.Server, listen: (done: () => void) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (err: Error) => reject(err);
    server.once('error', fail);
    listen(() => {
      server.off('error', fail);
      resolve();
    });
  });
}

/** Listens on one path at a time per path in this process: replacing a stale socket is not atomic. */
const binding = new Map<string, Promise<void>>();

/**
 * Listens on a Unix socket path. A socket left there by a listener that died (kill -9, a crash)
 * is replaced when nothing answers on it; a live listener, or anything that is not a socket, is
 * left alone and reported (docs/socket-transport.md, "A socket left by a crash").
 */
function listenOnPath(server: net.Server, path: string): Promise<void> {
  const turn = (binding.get(path) ?? Promise.resolve()).then(() => bindPath(server, path));
  const settled = turn.catch(() => {});
  binding.set(path, settled);
  void settled.then(() => binding.get(path) === settled && binding.delete(path));
  return turn;
}

async function bindPath(server: net.Server, path: string): Promise<void> {
  const fail = (why: string, cause?: unknown) =>
    new IpcError('CONNECTION_FAILED', `cannot listen on ${path}: ${why}`, { cause });
  // A stale socket is replaced once; still in use after that, another listener took the path.
  for (let replaced = false; ; replaced = true) {
    const error = await bind(server, (done) => server.listen(path, done)).then(
      () => undefined,
      (err: NodeJS.ErrnoException) => err,
    );
    if (error === undefined) return;
    if (error.code !== 'EADDRINUSE') throw fail(error.message, error);
    const before = await lstat(path).catch(() => undefined);
    if (before === undefined) {
      if (replaced) throw fail(error.message, error);
      continue;
    }
    if (!before.isSocket()) {
      throw fail('the path exists and is not a socket; it was left as it is', error);
    }
    const probe = await answers(path);
    if (probe === 'answered') {
      throw fail(
        'another listener is accepting connections on it (close that one, or choose another path)',
        error,
      );
    }
    if (probe !== 'ECONNREFUSED' || replaced) {
      throw fail(
        `a socket is there and connecting to it failed with ${probe}, so it may be in use; it was left as it is`,
        error,
      );
    }
    // Refused: nobody listens. Unlinked only if it is still the same socket, not one that another
    // process's listener put there meanwhile.
    const now = await lstat(path).catch(() => undefined);
    if (now !== undefined && now.ino === before.ino && now.dev === before.dev) {
      await unlink(path).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT')
          throw fail(`cannot remove the stale socket: ${err.message}`, err);
      });
    }
  }
}

/** 'answered' when a listener accepts a connection on `path`; else the connect error's code. */
function answers(path: string): Promise<string> {
  return new Promise((resolve) => {
    const probe = net.connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve('answered');
    });
    probe.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

function refuseTlsOnUnix(address: SocketAddress, options: { tls?: unknown }): void {
  if ('path' in address && options.tls !== undefined) {
    throw new IpcError(
      'INVALID_ARGUMENT',
      `tls is for TCP; a Unix socket (${address.path}) is already private to this user`,
    );
  }
}

/** Connects to a socket listener; resolves with the root channel once the handshake is done. */
export async function connectSocket(
  address: SocketAddress,
  options: ConnectOptions = {},
): Promise<Channel> {
  assertAddress(address);
  resolveConnectionOptions(options);
  refuseTlsOnUnix(address, options);
  // A TLS socket reads Node's buffers: its bytes are decrypted before this side could choose.
  const reads = options.tls === undefined ? new DirectReads() : undefined;
  const socket = await new Promise<net.Socket>((resolve, reject) => {
    const fail = (err: Error) =>
      reject(new IpcError('CONNECTION_FAILED', `cannot connect: ${err.message}`, { cause: err }));
    let s: net.Socket;
    if (reads === undefined) {
      const { host, port } = address as { host: string; port: number };
      s = tls.connect({ ...options.tls, host, port }, () => resolve(s));
    } else {
      const { onread } = reads;
      s = net.connect(
        'path' in address
          ? { path: address.path, onread }
          : { port: address.port, host: address.host, onread },
      );
      s.once('connect', () => resolve(s));
    }
    s.once('error', fail);
  });
  return channelOverSocket(socket, true, options, reads);
}

/** Runs the handshake on an already connected stream (a socketpair, for example). */
export async function channelOverSocket(
  socket: net.Socket,
  client: boolean,
  options: ConnectionOptions = {},
  reads?: DirectReads,
): Promise<Channel> {
  return new Channel(
    await new Connection(new SocketCarrier(socket, reads), client, options).handshake(
      options.handshakeTimeoutMs,
    ),
  );
}
