export {
  DataPipe,
  DataPipeConsumer,
  type DataPipeOptions,
  DataPipeProducer,
  type PipeStats,
  type PipeWriteOptions,
} from './pipe.js';
