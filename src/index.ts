export * from './channel/index.js';
export { IPC_ERROR_CODES, IpcError, type IpcErrorCode, isIpcError } from './errors.js';
export * from './pipe/index.js';
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
export * from './wire/index.js';
