export type { NatsAddress, NatsConnectOptions, NatsListenOptions } from '../nats/index.js';
export type { Suite as NatsSuite } from '../nats/seal.js';
export { type ConnectionOptions, flushSockets, socketDiagnostics } from './connection.js';
export {
  type ConnectOptions,
  channelOverSocket,
  connect,
  Listener,
  type ListenOptions,
  listen,
  privateSocketPath,
  type SocketAddress,
} from './listen.js';
export { parentChannels, type SpawnedProcess, type SpawnOptions, spawnProcess } from './spawn.js';
