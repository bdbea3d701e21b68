export {
  type ClientClass,
  createPool,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_MAX_QUEUE,
  DEFAULT_WORKER_CAPACITY,
  Pool,
  type PoolOptions,
  type PoolStats,
  type PoolWorkerStats,
  poolChannel,
  type WorkerState,
  workerChannel,
} from './pool.js';
