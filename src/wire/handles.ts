import type { Handle } from '../channel/index.js';
import type { PipeEnd } from '../idl/model.js';
import { DataPipeConsumer, DataPipeProducer } from '../pipe/index.js';

/** A class of handle a field may carry: encoders and decoders check the handle against it. */
export type HandleClass<T extends Handle = Handle> = abstract new (...args: never[]) => T;

/** The class of handle a `pipe` field carries, by its IDL `end`. */
export const pipeEndClasses = {
  producer: DataPipeProducer,
  consumer: DataPipeConsumer,
} as const satisfies Record<PipeEnd, HandleClass>;

export type PipeEndOf<E extends PipeEnd> = InstanceType<(typeof pipeEndClasses)[E]>;
