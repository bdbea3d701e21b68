/**
 * A single-producer, single-consumer byte ring in a SharedArrayBuffer, so that the same buffer
 * serves a pipe whose ends are in one thread or in two. WRITE and READ count bytes modulo twice
 * the capacity; their distance is what is buffered.
 *
 * Two-phase writes need contiguous space. When the space left before the end of the buffer is too
 * short, the producer skips it: it records where the skip starts (SKIP_AT) and counts the skipped
 * bytes as written, so the consumer jumps over them and free space stays `capacity - used`. At most
 * one skip is outstanding: the next one is a lap later, which the consumer must first have read.
 */
import {
  type Arena,
  allocate,
  BLOCK_HEADER,
  KIND_PIPE,
  MAX_BLOCK,
  PIPE_KEY,
} from '../shm/arena.js';

// Each side's hot index has a cache line of its own, so that the two threads do not fight over it.
export const WRITE = 0;
export const READ = 16;
const SKIP_AT = 32;
const HAS_SKIP = 33;
/** Bit flags: which end has closed. */
const CLOSED = 34;
/** Set while that side sleeps on its watched word, so the other side notifies only then. */
export const PRODUCER_SLEEPING = 35;
export const CONSUMER_SLEEPING = 36;
/** Set by the side that wakes a sleeper, reset by the sleeper: one notify per sleep, not one per commit. */
export const PRODUCER_WOKEN = 37;
export const CONSUMER_WOKEN = 38;
/** The arena entry of the thread that holds each end (0 while it travels): see reapPipes. */
export const PRODUCER_OWNER = 39;
export const CONSUMER_OWNER = 40;
/** Arrivals of an end in a thread: tells an exporter whether its token was imported. */
export const ARRIVALS = 41;
const HEADER_INTS = 48;
export const RING_HEADER_BYTES = HEADER_INTS * 4;

export const PRODUCER_CLOSED = 1;
export const CONSUMER_CLOSED = 2;

export class ByteRing {
  readonly capacity: number;
  /** The arena block the ring lives in; undefined for a ring too large for one. */
  readonly arena: Arena | undefined;
  readonly offset: number;
  readonly #header: Int32Array;
  readonly #data: Uint8Array;

  /**
   * Indices run over [0, 2 × capacity), a multiple of the capacity that int32 holds for any
   * capacity, so positions stay right however many bytes have passed; twice, so that a full
   * ring (write - read = capacity) differs from an empty one.
   */
  readonly #lap: number;

  constructor(
    buffer: SharedArrayBuffer,
    arena?: Arena,
    offset = 0,
    capacity = buffer.byteLength - RING_HEADER_BYTES,
  ) {
    this.arena = arena;
    this.offset = offset;
    this.#header = new Int32Array(buffer, offset, HEADER_INTS);
    this.#data = new Uint8Array(buffer, offset + RING_HEADER_BYTES, capacity);
    this.capacity = capacity;
    this.#lap = 2 * this.capacity;
  }

  /**
   * A ring from the thread's arena, whose blocks are reused as soon as both ends closed; a
   * ring too large for an arena block gets a SharedArrayBuffer of its own.
   */
  static create(capacity: number): ByteRing {
    if (capacity + RING_HEADER_BYTES + BLOCK_HEADER > MAX_BLOCK) {
      return new ByteRing(new SharedArrayBuffer(RING_HEADER_BYTES + capacity));
    }
    const { arena, offset } = allocate(RING_HEADER_BYTES + capacity, KIND_PIPE);
    arena.i32.fill(0, offset >> 2, (offset >> 2) + HEADER_INTS);
    const ring = new ByteRing(arena.buffer, arena, offset, capacity);
    ring.header[PRODUCER_OWNER] = arena.thread;
    ring.header[CONSUMER_OWNER] = arena.thread;
    return ring;
  }

  /** Returns an arena ring's block; called once, by whichever close set the last flag. */
  dispose(): void {
    this.arena?.free(this.offset);
  }

  /** The shared memory, to hand to another thread. */
  get buffer(): SharedArrayBuffer {
    return this.#data.buffer as SharedArrayBuffer;
  }

  /** The Int32Array that waiters in other threads wait on (indices WRITE and READ change). */
  get header(): Int32Array {
    return this.#header;
  }

  get used(): number {
    return this.#distance(Atomics.load(this.#header, READ), Atomics.load(this.#header, WRITE));
  }

  /** Index `i` moved on by `n` bytes. */
  advance(i: number, n: number): number {
    return (i + n) % this.#lap;
  }

  #distance(from: number, to: number): number {
    return (to - from + this.#lap) % this.#lap;
  }

  /** Bytes the consumer can read: `used` less the skipped tail, if any. */
  get buffered(): number {
    const used = this.used;
    if (Atomics.load(this.#header, HAS_SKIP) === 0) return used;
    const skipAt = Atomics.load(this.#header, SKIP_AT);
    return used - (this.capacity - (skipAt % this.capacity));
  }

  get free(): number {
    return this.capacity - this.used;
  }

  get closedFlags(): number {
    return Atomics.load(this.#header, CLOSED);
  }

  /** Sets a closed flag; returns true for the call that set the last one of both. */
  markClosed(flag: number): boolean {
    const before = Atomics.or(this.#header, CLOSED, flag);
    return (before | flag) === (PRODUCER_CLOSED | CONSUMER_CLOSED) && (before & flag) === 0;
  }

  /** Producer: a view of at least `min` contiguous free bytes, or undefined if there is none. */
  writable(min: number): Uint8Array | undefined {
    const write = Atomics.load(this.#header, WRITE);
    const free = this.free;
    const pos = write % this.capacity;
    const tail = this.capacity - pos;
    if (tail >= min && free >= min) return this.#data.subarray(pos, pos + Math.min(tail, free));
    // Only skip when the start of the buffer then has room: skipping costs the tail's bytes.
    if (free - tail >= min && Atomics.load(this.#header, HAS_SKIP) === 0) {
      Atomics.store(this.#header, SKIP_AT, write);
      Atomics.store(this.#header, HAS_SKIP, 1);
      Atomics.store(this.#header, WRITE, this.advance(write, tail));
      return this.#data.subarray(0, free - tail);
    }
    return undefined;
  }

  /** Producer: publishes `n` bytes written into the view from `writable`. */
  commitWrite(n: number): void {
    Atomics.store(this.#header, WRITE, this.advance(Atomics.load(this.#header, WRITE), n));
  }

  /** Consumer: a view of the contiguous buffered bytes, empty when there are none. */
  readable(): Uint8Array {
    const read = Atomics.load(this.#header, READ);
    const from = this.readFrom(read);
    if (from !== read) {
      Atomics.store(this.#header, READ, from);
      Atomics.store(this.#header, HAS_SKIP, 0);
    }
    return this.peek(from);
  }

  /**
   * Consumer read-ahead (the socket transport sends bytes before it releases them): where the
   * bytes at absolute index `at` (READ or past it) start, past the skipped tail if `at` is its start.
   */
  readFrom(at: number): number {
    if (Atomics.load(this.#header, HAS_SKIP) === 1 && at === Atomics.load(this.#header, SKIP_AT)) {
      return this.advance(at, this.capacity - (at % this.capacity));
    }
    return at;
  }

  /** Consumer read-ahead: the contiguous bytes from `from` (as given by `readFrom`), not released. */
  peek(from: number): Uint8Array {
    const available = this.#distance(from, Atomics.load(this.#header, WRITE));
    const pos = from % this.capacity;
    let end = pos + Math.min(available, this.capacity - pos);
    if (Atomics.load(this.#header, HAS_SKIP) === 1) {
      const untilSkip = this.#distance(from, Atomics.load(this.#header, SKIP_AT));
      if (untilSkip < end - pos) end = pos + untilSkip;
    }
    return this.#data.subarray(pos, end);
  }

  /** Consumer: the absolute index of the next byte to read. */
  get readIndex(): number {
    return Atomics.load(this.#header, READ);
  }

  /** Consumer: releases `n` bytes read from the view from `readable`. */
  commitRead(n: number): void {
    Atomics.store(this.#header, READ, this.advance(Atomics.load(this.#header, READ), n));
  }
}

/**
 * Closes one end of the arena ring at `offset` for a thread that cannot: the one holding it
 * died, or the end died unread inside a message. Wakes the other end and its thread, and
 * frees the block once both ends are closed.
 */
export function closeRingEnd(arena: Arena, offset: number, producer: boolean): void {
  const h = offset >> 2;
  // The offset came from a descriptor or a scan: past this thread's views if another grew them.
  arena.cover(offset + RING_HEADER_BYTES);
  const i32 = arena.i32;
  const flag = producer ? PRODUCER_CLOSED : CONSUMER_CLOSED;
  const before = Atomics.or(i32, h + CLOSED, flag);
  if ((before & flag) !== 0) return;
  Atomics.notify(i32, h + (producer ? WRITE : READ));
  arena.notifyThread(
    Atomics.load(i32, h + (producer ? CONSUMER_OWNER : PRODUCER_OWNER)),
    offset | PIPE_KEY,
  );
  if ((before | flag) === (PRODUCER_CLOSED | CONSUMER_CLOSED)) arena.free(offset);
}

/** Closes the ends of the arena ring at `offset` that the `dead` thread entries held. */
export function reapRing(arena: Arena, offset: number, dead: Set<number>): void {
  const h = offset >> 2;
  const producer = dead.has(Atomics.load(arena.i32, h + PRODUCER_OWNER));
  const consumer = dead.has(Atomics.load(arena.i32, h + CONSUMER_OWNER));
  // The entries are freed after this scan: nobody may notify them then.
  if (producer) Atomics.store(arena.i32, h + PRODUCER_OWNER, 0);
  if (consumer) Atomics.store(arena.i32, h + CONSUMER_OWNER, 0);
  if (producer) closeRingEnd(arena, offset, true);
  if (consumer) closeRingEnd(arena, offset, false);
}
