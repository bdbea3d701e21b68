import type { MessagePort } from 'node:worker_threads';
import { kHandleState, kRelease } from '../channel/handle.js';
import { IpcError } from '../errors.js';
import { DataPipeConsumer, DataPipeProducer, PipeEndState, type PipeKind } from './pipe.js';
import { ByteRing } from './ring.js';
import { PipeSignals } from './signals.js';

/** A pipe end on its way to another thread: structured-cloneable, with `port` to transfer. */
export interface PipeToken {
  readonly kind: PipeKind;
  readonly buffer: SharedArrayBuffer;
  readonly port: MessagePort;
}

/** Turns a pipe end's state into a token; the state must not be used here afterwards. */
export function pipeStateToToken(state: PipeEndState): PipeToken {
  return { kind: state.kind, buffer: state.ring.buffer, port: state.signals.split(state.side) };
}

export function isPipeToken(token: unknown): token is PipeToken {
  const t = token as PipeToken;
  return (
    typeof t === 'object' &&
    t !== null &&
    (t.kind === 'pipe-producer' || t.kind === 'pipe-consumer') &&
    t.buffer instanceof SharedArrayBuffer &&
    typeof t.port?.postMessage === 'function'
  );
}

export function pipeStateFromToken(token: PipeToken): PipeEndState {
  const ring = new ByteRing(token.buffer);
  const side = token.kind === 'pipe-producer' ? 'producer' : 'consumer';
  return new PipeEndState(token.kind, ring, PipeSignals.arrived(ring, side, token.port));
}

/**
 * Prepares a pipe end for another thread. Put the token in `workerData` or a `postMessage`, with
 * `token.port` in the transfer list, and call {@link importPipeEnd} there once. The end is dead
 * here afterwards. Pipe ends inside channel messages cross threads on their own; this is for
 * handing the first one over.
 */
export function exportPipeEnd(end: DataPipeProducer | DataPipeConsumer): PipeToken {
  if (!(end instanceof DataPipeProducer || end instanceof DataPipeConsumer)) {
    throw new IpcError('INVALID_ARGUMENT', `exportPipeEnd expects a pipe end, got ${String(end)}`);
  }
  const state = end[kHandleState]() as PipeEndState | undefined;
  if (state === undefined) throw new IpcError('CLOSED', 'this pipe end is closed or was sent away');
  const token = pipeStateToToken(state);
  end[kRelease]();
  return token;
}

/** Turns a token from {@link exportPipeEnd} into a live pipe end in this thread. */
export function importPipeEnd(token: PipeToken): DataPipeProducer | DataPipeConsumer {
  if (!isPipeToken(token)) {
    throw new IpcError('INVALID_ARGUMENT', 'importPipeEnd expects a token from exportPipeEnd');
  }
  const state = pipeStateFromToken(token);
  return state.kind === 'pipe-producer' ? new DataPipeProducer(state) : new DataPipeConsumer(state);
}
