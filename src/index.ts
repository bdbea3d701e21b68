export * from './channel/index.js';
export { IPC_ERROR_CODES, IpcError, type IpcErrorCode, isIpcError } from './errors.js';
export * from './observe/index.js';
export * from './pipe/index.js';
export * from './pool/index.js';
export * from './runtime/index.js';
export * from './transport/socket/index.js';
export {
  type ArenaStats,
  type EndpointToken,
  exportEndpoint,
  importEndpoint,
  type ResolvedWakePolicy,
  setDefaultWakePolicy,
  sharedMemoryStats,
  type WakePolicy,
} from './transport/worker/index.js';
export {
  type SpawnedWorker,
  type SpawnWorkerOptions,
  spawnWorker,
} from './transport/worker/spawn.js';
// What code calling and serving a generated protocol writes; the rest of the wire, which
// generated code uses, is the `ftl-ipc/wire` entry.
export type { CallOptions, ClientOptions } from './wire/rpc.js';
export type { CallContext, ServeOptions } from './wire/rpc-server.js';
