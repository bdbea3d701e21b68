import { Readable, Writable } from 'node:stream';
import { checkOnFull, type OnFull, type WaitOptions } from '../channel/channel.js';
import type { HandleState } from '../channel/endpoint.js';
import { type Handle, kHandleState, kRelease, registerHandleKind } from '../channel/handle.js';
import { IpcError } from '../errors.js';
import { ByteRing, CONSUMER_CLOSED, PRODUCER_CLOSED } from './ring.js';
import { type PipeSide, PipeSignals } from './signals.js';

export interface DataPipeOptions {
  /** Bytes the pipe holds. Default 1 MiB: 16 chunks of 64 KiB. */
  capacityBytes?: number;
}

export interface PipeWriteOptions {
  /** Write what fits (possibly nothing) instead of all or none. Default false. */
  partial?: boolean;
  /** When an all-or-none write does not fit: 'throw' (BACKPRESSURE, default), 'drop', 'close'. */
  onFull?: OnFull;
}

export interface PipeStats {
  /** Bytes this end committed (producer) or released (consumer). */
  bytes: number;
  /** Bytes in the pipe now. */
  buffered: number;
  /**
   * Bytes a write may take now: `capacity - buffered`, less the short tail a two-phase write
   * skipped to get contiguous room, until the consumer has read past it.
   */
  free: number;
  /** All-or-none writes that found too little room. */
  backpressured: number;
  /** Bytes dropped by `onFull: 'drop' | 'close'`. */
  dropped: number;
}

/**
 * Room for 16 of the 64 KiB chunks that Node's streams and files hand out, so that producer and
 * consumer in two threads work at once: a pipe of one chunk made them take turns.
 */
const DEFAULT_CAPACITY = 1024 * 1024;
const MAX_CAPACITY = 2 ** 30;
/** Most bytes a Web or Node stream adapter hands on per chunk. */
const STREAM_CHUNK = 64 * 1024;

export type PipeKind = 'pipe-producer' | 'pipe-consumer';

/** One end's state, which travels when the end is sent as a handle. */
export class PipeEndState implements HandleState {
  readonly kind: PipeKind;
  readonly ring: ByteRing;
  readonly signals: PipeSignals;
  readonly stats = { bytes: 0, backpressured: 0, dropped: 0 };

  constructor(kind: PipeKind, ring: ByteRing, signals: PipeSignals) {
    this.kind = kind;
    this.ring = ring;
    this.signals = signals;
  }

  get side(): PipeSide {
    return this.kind === 'pipe-producer' ? 'producer' : 'consumer';
  }

  get peerClosed(): boolean {
    return (
      (this.ring.closedFlags & (this.side === 'producer' ? CONSUMER_CLOSED : PRODUCER_CLOSED)) !== 0
    );
  }

  close(): void {
    const flag = this.side === 'producer' ? PRODUCER_CLOSED : CONSUMER_CLOSED;
    if (this.ring.closedFlags & flag) return;
    this.signals.closed(this.side);
  }
}

/** What both ends share: liveness, two-phase bookkeeping, moving as a handle. */
abstract class PipeEnd implements Handle {
  #state: PipeEndState | undefined;
  /** Length of the view handed out by the two-phase operation in progress, or -1. */
  protected phaseLength = -1;
  #resolveClosed!: () => void;
  /** The counters of the state this object had, kept for `stats` after close or a move. */
  readonly #counters: PipeEndState['stats'];
  /** Resolves when this end closes or is sent away, or the other end closes. Never rejects. */
  readonly closed: Promise<void>;

  constructor(state: PipeEndState) {
    this.#state = state;
    this.#counters = state.stats;
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
    state.signals.onClose(state.side === 'producer' ? 'consumer' : 'producer', () =>
      this.#resolveClosed(),
    );
    if (state.peerClosed) this.#resolveClosed();
  }

  get capacityBytes(): number {
    return this.live().ring.capacity;
  }

  /** Counters stay readable after close, as a channel's do; a closed end buffers nothing. */
  get stats(): PipeStats {
    const state = this.#state;
    if (state === undefined) return { ...this.#counters, buffered: 0, free: 0 };
    return { ...state.stats, buffered: state.ring.buffered, free: state.ring.free };
  }

  /**
   * Closes this end. Idempotent. Closing the producer keeps what it wrote readable; after the
   * consumer closes, writes fail with PEER_CLOSED.
   */
  close(): void {
    const state = this.#state;
    if (state === undefined) return;
    this.#state = undefined;
    this.phaseLength = -1;
    state.close();
    this.#resolveClosed();
  }

  /** @internal */
  [kHandleState](): HandleState | undefined {
    if (this.phaseLength >= 0) {
      throw new IpcError(
        'HANDLE_NOT_MOVABLE',
        'a pipe end cannot move while a two-phase read or write is in progress',
      );
    }
    return this.#state;
  }

  /** @internal */
  [kRelease](): void {
    const state = this.#state;
    this.#state = undefined;
    state?.signals.release(state.side);
    this.#resolveClosed();
  }

  protected live(): PipeEndState {
    if (this.#state !== undefined) return this.#state;
    throw new IpcError('CLOSED', 'this pipe end is closed or was sent away');
  }

  protected assertIdle(what: string): void {
    if (this.phaseLength >= 0) {
      throw new IpcError('INVALID_ARGUMENT', `a two-phase ${what} is already in progress`);
    }
  }

  protected finishPhase(n: number, what: string): void {
    if (this.phaseLength < 0) {
      throw new IpcError(
        'INVALID_ARGUMENT',
        `end${what} called with no two-phase ${what} in progress`,
      );
    }
    if (!Number.isInteger(n) || n < 0 || n > this.phaseLength) {
      throw new IpcError(
        'INVALID_ARGUMENT',
        `end${what}(${n}): n must be an integer from 0 to ${this.phaseLength}, the view's length`,
      );
    }
    this.phaseLength = -1;
  }

  protected wait(ready: () => boolean, options: WaitOptions, what: string): Promise<void> {
    try {
      const state = this.live();
      return state.signals.wait(state.side, ready, options, what);
    } catch (err) {
      return Promise.reject(err);
    }
  }
}

function checkMin(minBytes: number, capacity: number): void {
  if (!Number.isInteger(minBytes) || minBytes < 1) {
    throw new IpcError('INVALID_ARGUMENT', `minBytes must be an integer >= 1, got ${minBytes}`);
  }
  if (minBytes > capacity) {
    throw new IpcError(
      'TOO_LARGE',
      `${minBytes} bytes can never fit in a pipe of capacity ${capacity} bytes`,
    );
  }
}

function peerClosedError(side: PipeSide): IpcError {
  return new IpcError(
    'PEER_CLOSED',
    side === 'producer' ? 'the pipe consumer is closed' : 'the pipe producer is closed and drained',
  );
}

/** The writing end of a data pipe. */
export class DataPipeProducer extends PipeEnd {
  /**
   * Two-phase write: a view of at least `minBytes` contiguous free bytes of the pipe's own buffer,
   * or undefined when there is not that much room now (wait with `writable(minBytes)`). Fill it,
   * then `endWrite(n)`. Throws PEER_CLOSED when the consumer is gone.
   */
  beginWrite(minBytes = 1): Uint8Array | undefined {
    const state = this.live();
    this.assertIdle('write');
    checkMin(minBytes, state.ring.capacity);
    if (state.peerClosed) throw peerClosedError('producer');
    const view = state.ring.writable(minBytes);
    if (view !== undefined) this.phaseLength = view.byteLength;
    return view;
  }

  /** Commits the first `n` bytes of the view from `beginWrite`. */
  endWrite(n: number): void {
    const state = this.live();
    this.finishPhase(n, 'Write');
    state.ring.commitWrite(n);
    this.#published(state, n);
  }

  /**
   * Copies `bytes` into the pipe and returns how many were written. All or none by default, with
   * `onFull` deciding what happens when they do not fit; `partial: true` writes what fits.
   */
  write(bytes: Uint8Array, options: PipeWriteOptions = {}): number {
    const state = this.live();
    if (!(bytes instanceof Uint8Array)) {
      throw new IpcError('INVALID_ARGUMENT', 'write takes a Uint8Array');
    }
    this.assertIdle('write');
    const onFull = checkOnFull(options.onFull);
    if (state.peerClosed) throw peerClosedError('producer');
    const ring = state.ring;
    if (options.partial === true) return this.#copyIn(state, bytes.subarray(0, ring.free));
    if (bytes.byteLength > ring.capacity) {
      throw new IpcError(
        'TOO_LARGE',
        `a write of ${bytes.byteLength} bytes can never fit in a pipe of capacity ${ring.capacity} bytes`,
      );
    }
    if (bytes.byteLength <= ring.free) return this.#copyIn(state, bytes);
    state.stats.backpressured++;
    if (onFull === 'throw') {
      throw new IpcError(
        'BACKPRESSURE',
        `the pipe has ${ring.free} of ${ring.capacity} bytes free; a write of ${bytes.byteLength} bytes was not made`,
      );
    }
    state.stats.dropped += bytes.byteLength;
    if (onFull === 'close') this.close();
    return 0;
  }

  /**
   * Writes every byte, waiting for room as often as needed. Rejects with PEER_CLOSED, CLOSED,
   * TIMEOUT (`timeoutMs` bounds the whole call) or ABORTED; what was written before stays written.
   */
  async writeAll(bytes: Uint8Array, options: WaitOptions = {}): Promise<void> {
    const deadline = options.timeoutMs === undefined ? undefined : Date.now() + options.timeoutMs;
    for (let offset = 0; ; ) {
      offset += this.write(bytes.subarray(offset), { partial: true });
      if (offset === bytes.byteLength) return;
      await this.writable(1, {
        ...(options.signal ? { signal: options.signal } : {}),
        ...(deadline === undefined ? {} : { timeoutMs: Math.max(0, deadline - Date.now()) }),
      });
    }
  }

  /** Resolves when `minBytes` can be written (contiguously, for `beginWrite`). */
  writable(minBytes = 1, options: WaitOptions = {}): Promise<void> {
    try {
      const state = this.live();
      checkMin(minBytes, state.ring.capacity);
      return this.wait(() => state.ring.free >= minBytes, options, 'no room in the pipe');
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** A WritableStream that writes into the pipe, holding back its writer while the pipe is full. */
  toWritableStream(): WritableStream<Uint8Array> {
    return new WritableStream<Uint8Array>(
      {
        write: (chunk) => this.writeAll(chunk),
        close: () => this.close(),
        abort: () => this.close(),
      },
      { highWaterMark: 1 },
    );
  }

  /** A Node Writable over the pipe; `write()` returns false while the pipe is full. */
  toNodeWritable(): Writable {
    return new Writable({
      highWaterMark: 0,
      write: (chunk: Uint8Array, _encoding, callback) => {
        this.writeAll(chunk).then(() => callback(), callback);
      },
      final: (callback) => {
        this.close();
        callback();
      },
      destroy: (err, callback) => {
        this.close();
        callback(err);
      },
    });
  }

  #copyIn(state: PipeEndState, bytes: Uint8Array): number {
    let written = 0;
    while (written < bytes.byteLength) {
      const view = state.ring.writable(1) as Uint8Array;
      const n = Math.min(view.byteLength, bytes.byteLength - written);
      view.set(bytes.subarray(written, written + n));
      state.ring.commitWrite(n);
      written += n;
    }
    this.#published(state, written);
    return written;
  }

  #published(state: PipeEndState, n: number): void {
    if (n === 0) return;
    state.stats.bytes += n;
    state.signals.notify('consumer');
  }
}

/** The reading end of a data pipe. */
export class DataPipeConsumer extends PipeEnd {
  /**
   * Two-phase read: a view of the contiguous bytes available now (undefined when there are none;
   * wait with `readable()`). Read them in place, then `endRead(n)`. Throws PEER_CLOSED when the
   * producer has closed and every byte was read.
   */
  beginRead(): Uint8Array | undefined {
    const state = this.live();
    this.assertIdle('read');
    const view = state.ring.readable();
    if (view.byteLength === 0) {
      if (state.peerClosed && state.ring.buffered === 0) throw peerClosedError('consumer');
      return undefined;
    }
    this.phaseLength = view.byteLength;
    return view;
  }

  /** Releases the first `n` bytes of the view from `beginRead`. */
  endRead(n: number): void {
    const state = this.live();
    this.finishPhase(n, 'Read');
    if (n === 0) return;
    state.ring.commitRead(n);
    state.stats.bytes += n;
    state.signals.notify('producer');
  }

  /** Waits for bytes and returns a copy of up to `maxBytes` of them. Rejects PEER_CLOSED at the end. */
  async read(maxBytes = Number.POSITIVE_INFINITY): Promise<Uint8Array> {
    for (;;) {
      const view = this.beginRead();
      if (view !== undefined) {
        const copy = view.slice(0, Math.min(view.byteLength, maxBytes));
        this.endRead(copy.byteLength);
        return copy;
      }
      await this.readable();
    }
  }

  /**
   * Resolves when at least `minBytes` are buffered, or fewer once the producer has closed.
   * Rejects PEER_CLOSED when the producer has closed and nothing is left.
   */
  readable(minBytes = 1, options: WaitOptions = {}): Promise<void> {
    try {
      const state = this.live();
      checkMin(minBytes, state.ring.capacity);
      const ring = state.ring;
      return this.wait(
        () => ring.buffered >= minBytes || (state.peerClosed && ring.buffered > 0),
        options,
        'no data in the pipe',
      );
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Yields chunks (copies) until the producer has closed and everything was read. */
  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array, void, undefined> {
    for (;;) {
      try {
        yield await this.read(STREAM_CHUNK);
      } catch (err) {
        if (err instanceof IpcError && (err.code === 'PEER_CLOSED' || err.code === 'CLOSED'))
          return;
        throw err;
      }
    }
  }

  /** A ReadableStream of the pipe's bytes; it reads only when its reader pulls. */
  toReadableStream(): ReadableStream<Uint8Array> {
    const chunks = this[Symbol.asyncIterator]();
    return new ReadableStream<Uint8Array>(
      {
        pull: async (controller) => {
          const next = await chunks.next();
          if (next.done) controller.close();
          else controller.enqueue(next.value);
        },
        cancel: () => this.close(),
      },
      { highWaterMark: 0 },
    );
  }

  /** A Node Readable of the pipe's bytes, honouring its consumer's backpressure. */
  toNodeReadable(): Readable {
    return Readable.from(this, { objectMode: false, highWaterMark: STREAM_CHUNK });
  }
}

/** A byte stream with a byte capacity: the bulk-data companion of channels. */
export const DataPipe = {
  create(options: DataPipeOptions = {}): [DataPipeProducer, DataPipeConsumer] {
    const capacity = options.capacityBytes ?? DEFAULT_CAPACITY;
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > MAX_CAPACITY) {
      throw new IpcError(
        'INVALID_ARGUMENT',
        `capacityBytes must be an integer from 1 to ${MAX_CAPACITY}, got ${String(capacity)}`,
      );
    }
    const ring = ByteRing.create(capacity);
    const signals = new PipeSignals(ring);
    return [
      new DataPipeProducer(new PipeEndState('pipe-producer', ring, signals)),
      new DataPipeConsumer(new PipeEndState('pipe-consumer', ring, signals)),
    ];
  },
};

registerHandleKind('pipe-producer', (state) => new DataPipeProducer(state as PipeEndState));
registerHandleKind('pipe-consumer', (state) => new DataPipeConsumer(state as PipeEndState));
