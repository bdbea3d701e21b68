export { connect, listen } from '../address.js';
export type { NatsAddress, NatsConnectOptions, NatsListenOptions } from '../nats/index.js';
export type { Suite as NatsSuite } from '../nats/seal.js';
export { type ConnectionOptions, flushSockets, socketDiagnostics } from './connection.js';
export {
  type ConnectOptions,
  channelOverSocket,
  Listener,
  type ListenOptions,
  privateSocketPath,
  type SocketAddress,
} from './listen.js';
export { parentChannels, type SpawnedProcess, type SpawnOptions, spawnProcess } from './spawn.js';
