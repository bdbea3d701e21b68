export {
  DataPipe,
  DataPipeConsumer,
  type DataPipeOptions,
  DataPipeProducer,
  type PipeStats,
  type PipeWriteOptions,
} from './pipe.js';
export { exportPipeEnd, importPipeEnd, type PipeToken } from './thread.js';
