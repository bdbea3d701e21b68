/**
 * `listen` and `connect` for every carrier: the address says which (`{ path }` or
 * `{ host, port }` a socket, `{ nats, service }` NATS). The carriers do not know each other;
 * NATS is loaded on first use, so a program without it never loads its client.
 */
import type { Channel } from '../channel/channel.js';
import type { NatsAddress, NatsConnectOptions, NatsListenOptions } from './nats/index.js';
import {
  type ConnectOptions,
  connectSocket,
  type Listener,
  type ListenOptions,
  listenSocket,
  type SocketAddress,
} from './socket/listen.js';

function isNats(address: SocketAddress | NatsAddress): address is NatsAddress {
  return typeof address === 'object' && address !== null && 'nats' in address;
}

/**
 * Listens on a Unix socket (mode 0600, in a directory only this user may enter) or on TCP.
 * Each connection that completes the handshake yields its root channel.
 */
export async function listen(address: SocketAddress, options?: ListenOptions): Promise<Listener>;
/** Listens for a service on NATS (docs/nats.md). */
export async function listen(
  address: NatsAddress,
  options?: NatsListenOptions,
): Promise<Listener<NatsAddress>>;
export async function listen(
  address: SocketAddress | NatsAddress,
  options: ListenOptions & NatsListenOptions = {},
): Promise<Listener<SocketAddress> | Listener<NatsAddress>> {
  if (isNats(address)) return (await import('./nats/index.js')).listenNats(address, options);
  return listenSocket(address, options);
}

/** Connects to a listener (a socket, or a service on NATS); resolves with the root channel once the handshake is done. */
export async function connect(
  address: SocketAddress | NatsAddress,
  options: ConnectOptions & NatsConnectOptions = {},
): Promise<Channel> {
  if (isNats(address)) return (await import('./nats/index.js')).connectNats(address, options);
  return connectSocket(address, options);
}
