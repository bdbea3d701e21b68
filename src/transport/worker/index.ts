export { type ArenaStats, sharedMemoryStats } from '../../shm/arena.js';
export {
  type ResolvedWakePolicy,
  setDefaultWakePolicy,
  type WakePolicy,
} from '../../shm/wake.js';
export { exportEndpoint, importEndpoint } from './endpoint-token.js';
export type { EndpointToken } from './shared-endpoint.js';
