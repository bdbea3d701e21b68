import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { kHandleState, kRelease } from '../channel/handle.js';
import { IpcError } from '../errors.js';
import { type Arena, arenaOf } from '../shm/arena.js';
import { DataPipeConsumer, DataPipeProducer, PipeEndState, type PipeKind } from './pipe.js';
import { ARRIVALS, ByteRing, closeRingEnd } from './ring.js';
import { PipeSignals } from './signals.js';

/**
 * A pipe end on its way to another thread: structured-cloneable once `port` is in the transfer
 * list. The buffer is shared on clone; the port closes when the thread the token went to ends,
 * which tells the other end if that thread died before it imported the token.
 */
export interface PipeToken {
  readonly kind: PipeKind;
  readonly buffer: SharedArrayBuffer;
  /** The arena block of the ring, or -1 for a ring with a buffer of its own. */
  readonly offset: number;
  readonly capacity: number;
  readonly port: MessagePort;
  /** What `postMessage` or `new Worker` must transfer with the token. */
  readonly transfer: [MessagePort];
}

export function isPipeToken(token: unknown): token is PipeToken {
  const t = token as PipeToken;
  return (
    typeof t === 'object' &&
    t !== null &&
    (t.kind === 'pipe-producer' || t.kind === 'pipe-consumer') &&
    t.buffer instanceof SharedArrayBuffer &&
    Number.isInteger(t.offset) &&
    Number.isInteger(t.capacity) &&
    typeof t.port?.postMessage === 'function'
  );
}

function pipeStateFromToken(token: PipeToken): PipeEndState {
  const arena = token.offset < 0 ? undefined : arenaOf(arenaIdOf(token.buffer), token.buffer);
  const ring =
    arena === undefined
      ? new ByteRing(token.buffer)
      : new ByteRing(arena.buffer, arena, token.offset, token.capacity);
  return arrive(token.kind, ring);
}

function arrive(kind: PipeKind, ring: ByteRing): PipeEndState {
  const side = kind === 'pipe-producer' ? 'producer' : 'consumer';
  return new PipeEndState(kind, ring, PipeSignals.arrived(ring, side));
}

function arenaIdOf(buffer: SharedArrayBuffer): number {
  return new Int32Array(buffer, 0, 4)[2] as number;
}

/**
 * Writes a pipe end as a handle descriptor (4 int32 words) at index `w` of `arena`; the state
 * is dead here afterwards. Only a ring in an arena can travel this way.
 */
export function writePipeHandle(state: PipeEndState, arena: Arena, w: number): void {
  const ring = state.ring;
  if (ring.arena === undefined) throw unmovable(ring.capacity);
  state.signals.split(state.side);
  const i32 = arena.i32;
  i32[w] = ring.arena.id;
  i32[w + 1] = ring.offset;
  i32[w + 2] = ring.capacity;
  i32[w + 3] = state.kind === 'pipe-producer' ? 0 : 1;
}

/** A pipe end whose descriptor at index `w` of `arena` will never be read: it closes. */
export function dropPipeHandle(arena: Arena, w: number): void {
  const i32 = arena.i32;
  closeRingEnd(arenaOf(i32[w] as number), i32[w + 1] as number, i32[w + 3] === 0);
}

export function readPipeHandle(arena: Arena, w: number): PipeEndState {
  const i32 = arena.i32;
  const home = arenaOf(i32[w] as number);
  const offset = i32[w + 1] as number;
  const capacity = i32[w + 2] as number;
  home.cover(offset + capacity);
  const ring = new ByteRing(home.buffer, home, offset, capacity);
  return arrive(i32[w + 3] === 0 ? 'pipe-producer' : 'pipe-consumer', ring);
}

/** Throws HANDLE_NOT_MOVABLE for a pipe end that cannot travel inside a message. */
export function checkPipeMovable(state: PipeEndState): void {
  if (state.ring.arena === undefined) throw unmovable(state.ring.capacity);
}

function unmovable(capacity: number): IpcError {
  return new IpcError(
    'HANDLE_NOT_MOVABLE',
    `a pipe of ${capacity} bytes has a buffer of its own and moves only with exportPipeEnd()`,
  );
}

/**
 * Prepares a pipe end for another thread. Put the token in `workerData` or a `postMessage` and
 * call {@link importPipeEnd} there once. The end is dead here afterwards. Pipe ends inside
 * channel messages cross threads on their own; this is for handing the first one over.
 */
export function exportPipeEnd(end: DataPipeProducer | DataPipeConsumer): PipeToken {
  if (!(end instanceof DataPipeProducer || end instanceof DataPipeConsumer)) {
    throw new IpcError('INVALID_ARGUMENT', `exportPipeEnd expects a pipe end, got ${String(end)}`);
  }
  const state = end[kHandleState]() as PipeEndState | undefined;
  if (state === undefined) throw new IpcError('CLOSED', 'this pipe end is closed or was sent away');
  const ring = state.ring;
  state.signals.split(state.side);
  end[kRelease]();
  const arrivals = Atomics.load(ring.header, ARRIVALS);
  const { port1, port2 } = new MessageChannel();
  port1.once('close', () => {
    if (Atomics.load(ring.header, ARRIVALS) === arrivals) state.signals.lost(state.side);
  });
  port1.unref();
  return {
    kind: state.kind,
    buffer: ring.buffer,
    offset: ring.arena === undefined ? -1 : ring.offset,
    capacity: ring.capacity,
    port: port2,
    transfer: [port2],
  };
}

/** Turns a token from {@link exportPipeEnd} into a live pipe end in this thread. */
export function importPipeEnd(token: PipeToken): DataPipeProducer | DataPipeConsumer {
  if (!isPipeToken(token)) {
    throw new IpcError('INVALID_ARGUMENT', 'importPipeEnd expects a token from exportPipeEnd');
  }
  const state = pipeStateFromToken(token);
  // Imported: the exporter stops watching for this thread's death.
  token.port.close();
  return state.kind === 'pipe-producer' ? new DataPipeProducer(state) : new DataPipeConsumer(state);
}
