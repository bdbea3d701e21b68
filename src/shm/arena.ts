/**
 * Shared memory that the threads of a process allocate channel state from: one growable
 * SharedArrayBuffer (an arena) that every thread holds, cut into power-of-two blocks that are
 * reused as soon as they are freed. A per-pair SharedArrayBuffer sized for the worst case cost
 * megabytes of address space per channel and came back only when the garbage collectors of
 * both threads let go of it; a block comes back on `free`, from any thread.
 *
 * Arenas reach threads started after them through `setEnvironmentData`, and threads that
 * made their own (started before this module loaded in their parent) through a
 * BroadcastChannel, read synchronously when an unknown arena is named.
 *
 * It also keeps one entry per thread, so that the parent of a worker that died can mark what
 * that worker owned (see `onThreadsDied`), and one wake word per thread, so that another
 * thread can tell this one that something it owns changed (see `notifyThread`).
 */

import { randomInt } from 'node:crypto';
import diagnosticsChannel from 'node:diagnostics_channel';
import {
  BroadcastChannel,
  getEnvironmentData,
  type MessagePort,
  receiveMessageOnPort,
  setEnvironmentData,
  threadId,
} from 'node:worker_threads';
import { IpcError } from '../errors.js';
import { waitAsync } from './wake.js';

/** Address space one arena reserves; committed only as blocks are first used. */
export const ARENA_RESERVE = 2 ** 29;
const MIN_CLASS = 6;
const MAX_CLASS = 28;
/** Largest block: 256 MiB. */
export const MAX_BLOCK = 2 ** MAX_CLASS;
const GROW_STEP = 2 ** 20;
/**
 * An arena grown past this whose blocks in use fall below a sixteenth of its size retires:
 * new pairs go to a new arena, and the old one, once its last block is freed, is let go of by
 * every thread, so the operating system gets its memory back (a SharedArrayBuffer cannot
 * shrink or give pages back otherwise).
 */
export const RETIRE_ABOVE = 2 ** 26;

/** Header words (int32). */
const MAGIC = 0;
const TOP = 1;
const ID = 2;
const THREADS = 3;
const LIVE_BYTES = 4;
const LIVE_BLOCKS = 5;
/**
 * The allocator's lock: 0 free, else the holder's thread entry (or UNNAMED), plus 1 while
 * others wait (a futex). See `lock`.
 */
export const LOCK = 6;
/** Bit `k` set while the free list of size class `k` is not empty. */
const FREE_MASK = 7;
const FREE_BYTES = 8;
/** Thread entries in the list: an arena with no other block in use is empty. */
const ENTRIES = 10;
/** 1 once new pairs go elsewhere (see `retire`); the arena that took over, once made. */
const RETIRED = 11;
const SUCCESSOR = 12;
/** Free-list heads, one per size class. */
const HEADS = 16;
/**
 * Quick lists: per size class, a lock-free stack (BigInt64 heads from here, a tag in the high
 * word against ABA) of freed blocks kept whole, so that the churn of a move (a slot, rings, a
 * handle block) costs one compare-and-swap per block, as it did before blocks merged, instead
 * of a split on every allocation and a merge on every free. They hold a few blocks per class
 * (see `quickLimit`); beyond that a freed block merges, and an allocation that finds no room
 * anywhere merges them all first.
 */
const QUICK = 32;
const QUICK_COUNT = 128;
const MAGIC_VALUE = 0x4654_4c42;
/**
 * One bit per 64-byte unit of the block area, set where a free block starts: whether a
 * block's buddy is free cannot be read from the buddy's header, which may be the payload of
 * a larger block in use.
 */
const BITMAP = 1024;
/** Blocks start here, aligned to their size relative to it (buddies differ in one bit). */
const BASE = 2 ** 21;
const AREA = ARENA_RESERVE - BASE;

/** Blocks a quick list of class `k` keeps: up to 64, and at most 1 MiB. */
/** Blocks smaller than this are carved in runs from a block of this class (64 KiB). */
const CARVE_CLASS = 16;

function quickLimit(k: number): number {
  return Math.max(2, Math.min(64, 2 ** (20 - k)));
}

/** A block's own header, before its payload: size class, kind, free-list links. */
export const BLOCK_HEADER = 16;
const B_CLASS = 0;
const B_KIND = 1;
const B_NEXT = 2;
const B_PREV = 3;
export const KIND_SLOT = 1;
export const KIND_RING = 2;
export const KIND_PIPE = 3;
const KIND_THREAD = 4;
const KIND_FREE = 5;
/** Out of every list and not handed out: being split or merged by one thread. */
const KIND_HELD = 6;
/** In a quick list: free, but not in the free lists that `rebuildFreeLists` makes again. */
const KIND_QUICK = 8;
/**
 * A block a thread allocated for something that is not reachable from shared memory yet (the
 * handles of a message it is sending), with that thread's entry in the header's free-list
 * word and, once handed over, a tag in the other link word: freed for it if it dies before
 * (see `claim`).
 */
export const KIND_CLAIMED = 7;
/** The back link of a claimed block whose message was sent (see `sent`). */
const SENT = 1;

/** A thread's entry (int32 words of its payload). */
const T_ID = 0;
const T_PARENT = 1;
const T_ALIVE = 2;
const T_WAKE = 3;
const T_NEXT = 4;
/** Set when the mailbox was full: the thread then looks at everything it holds here. */
const T_OVERFLOW = 5;
const T_MAIL_HEAD = 6;
const T_MAIL = 8;
const MAIL_SLOTS = 64;
const ENTRY_BYTES = (T_MAIL + MAIL_SLOTS) * 4;
const ENTRY_BLOCK = 512;
/** T_ALIVE: in use; its thread died; free for the next thread; being set up. */
const ALIVE = 1;
const DEAD = 0;
const VACANT = 2;
const CLAIMED = 3;
/**
 * What a mailbox key names: a channel side (its slot offset plus the side, bit 1 clear) or a
 * pipe ring (its offset with this bit set). Offsets of blocks are multiples of 16.
 */
export const PIPE_KEY = 2;

/** The lock word's holder for a thread still making its entry. */
const UNNAMED = 8;
/** A thread that waits this long for the allocator's lock goes on without it (see `lock`). */
const LOCK_PATIENCE_MS = 100;

/**
 * Takes the allocator's lock for `holder` (a thread entry, or UNNAMED); false when another
 * thread held it for LOCK_PATIENCE_MS. It is held for a few stores only, so a contender spins
 * briefly before it sleeps.
 *
 * `worker.terminate()` can end a thread at any point, the few stores under the lock included
 * (measured: a terminated loop was stopped between two stores in half of 200 tries), and the
 * lock would then stay held for good. So the word names its holder: the parent that sees the
 * holder exit takes the lock over and rebuilds the free lists from the block headers (see
 * `recover`), and meanwhile no thread blocks for longer than the patience: an allocation goes
 * on without the free lists (from the top of the arena, or fails with RESOURCE_EXHAUSTED), a
 * free goes to a quick list. The parent must get back to its event loop to see the exit.
 */
function lock(i32: Int32Array, holder: number): boolean {
  for (let spin = 0; spin <= 100; spin++) {
    if (Atomics.compareExchange(i32, LOCK, 0, holder) === 0) return true;
  }
  let deadline = 0;
  for (;;) {
    const held = Atomics.load(i32, LOCK);
    if (held === 0) {
      if (Atomics.compareExchange(i32, LOCK, 0, holder | 1) === 0) return true;
      continue;
    }
    if ((held & 1) === 0 && Atomics.compareExchange(i32, LOCK, held, held | 1) !== held) continue;
    Atomics.wait(i32, LOCK, held | 1, 1);
    const now = performance.now();
    if (deadline === 0) deadline = now + LOCK_PATIENCE_MS;
    else if (now > deadline) return false;
  }
}

function unlock(i32: Int32Array): void {
  if ((Atomics.exchange(i32, LOCK, 0) & 1) === 1) Atomics.notify(i32, LOCK);
}

/** ES2024's growable SharedArrayBuffer, which Node 20 has but the es2023 lib does not declare. */
interface Growable {
  readonly growable: boolean;
  grow(bytes: number): void;
}
const GrowableBuffer = SharedArrayBuffer as unknown as new (
  bytes: number,
  options: { maxByteLength: number },
) => SharedArrayBuffer;

function growable(buffer: SharedArrayBuffer): SharedArrayBuffer & Growable {
  return buffer as SharedArrayBuffer & Growable;
}

const arenaEvents = diagnosticsChannel.channel('ftl-ipc:worker:arena');

export interface ArenaStats {
  /** Identity of the arena (arenas of one process differ). */
  id: number;
  /** Address space reserved. */
  reserved: number;
  /** Bytes the arena has grown to: at most what the operating system has committed for it. */
  size: number;
  /** Bytes of the block area handed out so far, free blocks included (its high-water mark). */
  used: number;
  /** Bytes of free blocks below `used`, reusable for a block of any size. */
  freeBytes: number;
  /** Bytes of blocks in use now, and how many blocks. */
  liveBytes: number;
  liveBlocks: number;
}

/**
 * A buddy allocator: power-of-two blocks, each aligned to its size, so a freed block merges
 * with its buddy when that is free too, and freed memory serves any size. Free lists and the
 * free bitmap change under a lock in the arena; no thread holds it across a loop or a call,
 * where V8 could end a terminated worker's execution with the lock held: a split or a merge
 * takes it once per step and holds the block it works on out of every list meanwhile.
 */
export class Arena {
  readonly buffer: SharedArrayBuffer;
  readonly id: number;
  /** Views over the arena as far as this thread has seen it grow; see `cover`. */
  i32!: Int32Array;
  readonly #quick: BigInt64Array;
  u8!: Uint8Array;
  f64!: Float64Array;
  /** This thread's entry, made when the thread first uses the arena. */
  #thread = 0;
  /** Set when this thread lets go of the arena: the watch on its wake word ends. */
  released = false;

  constructor(buffer: SharedArrayBuffer) {
    this.buffer = buffer;
    this.#quick = new BigInt64Array(buffer, 0, 64);
    this.#views();
    this.id = this.i32[ID] as number;
  }

  static create(): Arena {
    const buffer = new GrowableBuffer(BASE + GROW_STEP, { maxByteLength: ARENA_RESERVE });
    const i32 = new Int32Array(buffer, 0, BITMAP / 4);
    i32[ID] = randomInt(1, 2 ** 31 - 1);
    i32[TOP] = BASE;
    Atomics.store(i32, MAGIC, MAGIC_VALUE);
    return new Arena(buffer);
  }

  /**
   * Fixed-length views: a view that tracks a growable buffer's length was measured 5x slower
   * per ring access. Memory allocated before a view was made is always inside it.
   */
  #views(): void {
    const n = this.buffer.byteLength;
    this.u8 = new Uint8Array(this.buffer, 0, n);
    this.i32 = new Int32Array(this.buffer, 0, n >> 2);
    this.f64 = new Float64Array(this.buffer, 0, n >> 3);
  }

  /**
   * Makes this thread's views reach `end`, which another thread may have allocated after
   * this thread last looked. Every offset read from shared memory or from a token goes
   * through here (or through a method below that does) before it is used.
   */
  cover(end: number): void {
    if (end > this.u8.length) this.#views();
  }

  /** This thread's entry offset, 0 before it used the arena. */
  get entry(): number {
    return this.#thread;
  }

  /** This thread's entry offset, registering the thread on first use. */
  get thread(): number {
    if (this.#thread === 0) this.#thread = this.#register();
    return this.#thread;
  }

  /**
   * A block of at least `bytes` bytes of payload, or 0 when the arena is full. Only the block
   * header is fresh: the payload holds whatever its last user left.
   */
  alloc(bytes: number, kind: number): number {
    const k = Math.max(MIN_CLASS, Math.ceil(Math.log2(bytes + BLOCK_HEADER)));
    if (k > MAX_CLASS) return 0;
    let block = this.#popQuick(k);
    if (block === 0) block = this.#take(k);
    if (block === 0) block = k < CARVE_CLASS ? this.#carve(k) : this.#bump(k);
    if (block === 0 && this.#drainQuick()) block = this.#take(k);
    if (block === 0) return 0;
    let j = this.i32[(block >> 2) + B_CLASS] as number;
    this.cover(block + 2 ** j);
    const i32 = this.i32;
    while (j > k) {
      // The upper half gets its header before the lower half shrinks: a scan of the blocks
      // (see `blocks`) always walks headers.
      j--;
      const upper = block + 2 ** j;
      i32[(upper >> 2) + B_CLASS] = j;
      i32[(upper >> 2) + B_KIND] = KIND_HELD;
      Atomics.store(i32, (block >> 2) + B_CLASS, j);
      this.#push(upper, j);
    }
    Atomics.store(i32, (block >> 2) + B_KIND, kind);
    Atomics.add(i32, LIVE_BYTES, 2 ** k);
    Atomics.add(i32, LIVE_BLOCKS, 1);
    return block + BLOCK_HEADER;
  }

  /**
   * A block for this thread alone until it is handed over (see `handOver`): if the thread dies
   * before, its parent frees it (a terminated worker can stop anywhere).
   */
  claim(bytes: number): number {
    const payload = this.alloc(bytes, KIND_CLAIMED);
    if (payload !== 0) {
      const w = (payload - BLOCK_HEADER) >> 2;
      Atomics.store(this.i32, w + B_PREV, 0);
      Atomics.store(this.i32, w + B_NEXT, this.thread);
    }
    return payload;
  }

  /**
   * Says that a claimed block was handed to a message about to be sent on the direction whose
   * control words start at int32 index `to`: if its thread dies, the parent's death handlers
   * decide what becomes of it (see `handedOverBy`), and `freeClaimed` leaves it. Its reader
   * frees it. Stored negated in the header's back link, which no free list then uses: a free
   * block's is never negative.
   */
  handOver(payload: number, to: number): void {
    Atomics.store(this.i32, ((payload - BLOCK_HEADER) >> 2) + B_PREV, -to);
  }

  /**
   * The message a block was handed to (see `handOver`) was sent: the block is its reader's
   * whatever becomes of its thread. A compare-and-swap on the tag: no other block can carry
   * that tag now (only the thread sending on that direction tags it), so a block its reader
   * freed and another thread claimed meanwhile is left alone.
   */
  sent(payload: number, to: number): void {
    Atomics.compareExchange(this.i32, ((payload - BLOCK_HEADER) >> 2) + B_PREV, -to, SENT);
  }

  /** The entry of the thread that claimed the block at `payload` (0 if it is not claimed). */
  claimer(payload: number): number {
    const w = (payload - BLOCK_HEADER) >> 2;
    return Atomics.load(this.i32, w + B_KIND) === KIND_CLAIMED
      ? Atomics.load(this.i32, w + B_NEXT)
      : 0;
  }

  /**
   * The blocks that `dead` threads claimed and handed to a message that may not have been
   * sent, with the direction of each (see `handOver`).
   */
  handedOverBy(dead: Set<number>): [number, number][] {
    const found: [number, number][] = [];
    for (const payload of this.blocks(KIND_CLAIMED)) {
      const tag = Atomics.load(this.i32, ((payload - BLOCK_HEADER) >> 2) + B_PREV);
      if (tag < 0 && dead.has(this.claimer(payload))) found.push([payload, -tag]);
    }
    return found;
  }

  /** Frees the claimed blocks of dead threads that were not handed over. */
  freeClaimed(dead: Set<number>): void {
    for (const payload of [...this.blocks(KIND_CLAIMED)]) {
      const w = (payload - BLOCK_HEADER) >> 2;
      if (Atomics.load(this.i32, w + B_PREV) === 0 && dead.has(this.claimer(payload))) {
        this.free(payload);
      }
    }
  }

  /** Payload bytes of the block at `payload`. */
  sizeOf(payload: number): number {
    this.cover(payload);
    return 2 ** (this.i32[(payload - BLOCK_HEADER) >> 2] as number) - BLOCK_HEADER;
  }

  /** Returns a block from `alloc`, from any thread; it merges with its free buddies. */
  free(payload: number): void {
    this.cover(payload);
    const block = payload - BLOCK_HEADER;
    const k = this.i32[(block >> 2) + B_CLASS] as number;
    const live = Atomics.sub(this.i32, LIVE_BYTES, 2 ** k) - 2 ** k;
    const blocks = Atomics.sub(this.i32, LIVE_BLOCKS, 1) - 1;
    this.#retireIfIdle(live, blocks);
    if (Atomics.load(this.i32, QUICK_COUNT + k) < quickLimit(k)) {
      this.#pushQuick(block, k);
    } else {
      Atomics.store(this.i32, (block >> 2) + B_KIND, KIND_HELD);
      this.#merge(block, k);
    }
  }

  /**
   * Puts a held block of class `k` in the free lists, merged with its free buddies; false when
   * the lock could not be had and it went to a quick list instead.
   */
  #merge(block: number, k: number): boolean {
    while (k < MAX_CLASS) {
      const buddy = BASE + ((block - BASE) ^ (2 ** k));
      if (!this.#unlinkFree(buddy, k)) break;
      k++;
      if (buddy < block) block = buddy;
      Atomics.store(this.i32, (block >> 2) + B_CLASS, k);
    }
    return this.#push(block, k);
  }

  /**
   * A new block of class `k` from a fresh 64 KiB block at the top, whose other blocks of that
   * class go to the quick list at once, in one compare-and-swap: small blocks are allocated
   * in runs, not one bump (and one alignment gap) each.
   */
  #carve(k: number): number {
    const chunk = this.#bump(CARVE_CLASS);
    if (chunk === 0) return this.#bump(k);
    const size = 2 ** k;
    const end = chunk + 2 ** CARVE_CLASS;
    const i32 = this.i32;
    const first = chunk + size;
    const last = end - size;
    for (let b = first; b < end; b += size) {
      i32[(b >> 2) + B_CLASS] = k;
      i32[(b >> 2) + B_KIND] = KIND_QUICK;
      i32[(b >> 2) + B_NEXT] = b + size;
    }
    // The chunk's header last: a scan of the blocks sees either the chunk or its pieces.
    Atomics.store(i32, (chunk >> 2) + B_CLASS, k);
    const count = 2 ** (CARVE_CLASS - k) - 1;
    Atomics.add(i32, QUICK_COUNT + k, count);
    const heads = this.#quick;
    for (;;) {
      const head = Atomics.load(heads, QUICK + k);
      Atomics.store(i32, (last >> 2) + B_NEXT, Number(head & 0xffff_ffffn));
      const next = (((head >> 32n) + 1n) << 32n) | BigInt(first);
      if (Atomics.compareExchange(heads, QUICK + k, head, next) === head) return chunk;
    }
  }

  #pushQuick(block: number, k: number): void {
    const i32 = this.i32;
    Atomics.store(i32, (block >> 2) + B_KIND, KIND_QUICK);
    Atomics.add(i32, QUICK_COUNT + k, 1);
    const heads = this.#quick;
    for (;;) {
      const head = Atomics.load(heads, QUICK + k);
      Atomics.store(i32, (block >> 2) + B_NEXT, Number(head & 0xffff_ffffn));
      const next = (((head >> 32n) + 1n) << 32n) | BigInt(block);
      if (Atomics.compareExchange(heads, QUICK + k, head, next) === head) return;
    }
  }

  /** A block of class `k` from its quick list (its kind still says quick), or 0. */
  #popQuick(k: number): number {
    const heads = this.#quick;
    for (;;) {
      const head = Atomics.load(heads, QUICK + k);
      const block = Number(head & 0xffff_ffffn);
      if (block === 0) return 0;
      this.cover(block + BLOCK_HEADER);
      const link = Atomics.load(this.i32, (block >> 2) + B_NEXT) >>> 0;
      const next = (((head >> 32n) + 1n) << 32n) | BigInt(link);
      if (Atomics.compareExchange(heads, QUICK + k, head, next) === head) {
        Atomics.sub(this.i32, QUICK_COUNT + k, 1);
        return block;
      }
    }
  }

  /** Merges every block of the quick lists; whether any merged. */
  #drainQuick(): boolean {
    let any = false;
    for (let k = MIN_CLASS; k <= MAX_CLASS; k++) {
      for (let block = this.#popQuick(k); block !== 0; block = this.#popQuick(k)) {
        if (!this.#merge(block, k)) return any;
        any = true;
      }
    }
    return any;
  }

  /** Retires this arena when it is large and nearly unused, and lets go of it when empty. */
  #retireIfIdle(live: number, blocks: number): void {
    const i32 = this.i32;
    if (Atomics.load(i32, RETIRED) === 0) {
      // This thread's views first: the buffer's own length is slower to read.
      if (i32.length <= RETIRE_ABOVE >> 2 || 16 * live >= this.buffer.byteLength) return;
      if (Atomics.compareExchange(i32, RETIRED, 0, 1) !== 0) return;
      if (arenaEvents.hasSubscribers) arenaEvents.publish({ event: 'retire', ...this.stats() });
    }
    if (blocks === Atomics.load(i32, ENTRIES)) {
      // Later, outside whatever freed the block; every other thread hears of it too.
      queueMicrotask(() => letGo(this));
      announce.postMessage({ empty: this.id });
    }
  }

  /** New pairs go elsewhere since this arena retired. */
  get retired(): boolean {
    return Atomics.load(this.i32, RETIRED) === 1;
  }

  /** Retired, with no block in use but the entries of threads. */
  get empty(): boolean {
    const i32 = this.i32;
    return this.retired && Atomics.load(i32, LIVE_BLOCKS) === Atomics.load(i32, ENTRIES);
  }

  /** The arena that took over from this retired one, made by the first thread to need it. */
  successor(): Arena {
    const id = Atomics.load(this.i32, SUCCESSOR);
    if (id !== 0) return arenaOf(id);
    const next = newArena();
    const won = Atomics.compareExchange(this.i32, SUCCESSOR, 0, next.id);
    return won === 0 ? next : arenaOf(won);
  }

  /*
   * The three methods below change the free lists. Each takes the lock once and holds it over
   * straight-line code only: a block header that another thread's growth put past this
   * thread's views makes it let go, widen the views and start again.
   */

  /**
   * Takes the first block of the smallest non-empty free list of class `k` or more out of it;
   * 0 when there is none.
   */
  #take(k: number): number {
    for (;;) {
      const i32 = this.i32;
      const limit = i32.length << 2;
      if (!lock(i32, this.#holder)) return 0;
      const mask = (i32[FREE_MASK] as number) & (-1 << k);
      if (mask === 0) {
        unlock(i32);
        return 0;
      }
      const j = 31 - Math.clz32(mask & -mask);
      const block = i32[HEADS + j] as number;
      const w = block >> 2;
      const next = block + BLOCK_HEADER > limit ? -1 : (i32[w + B_NEXT] as number);
      if (next < 0 || next + BLOCK_HEADER > limit) {
        unlock(i32);
        this.#views();
        continue;
      }
      i32[HEADS + j] = next;
      if (next === 0) i32[FREE_MASK] = (i32[FREE_MASK] as number) & ~(1 << j);
      else i32[(next >> 2) + B_PREV] = 0;
      const unit = (block - BASE) >> 6;
      const bits = (BITMAP >> 2) + (unit >> 5);
      i32[bits] = (i32[bits] as number) & ~(1 << unit);
      i32[w + B_KIND] = KIND_HELD;
      i32[FREE_BYTES] = (i32[FREE_BYTES] as number) - 2 ** j;
      unlock(i32);
      return block;
    }
  }

  /** Takes `block` out of its free list if it is a free block of class `k`. */
  #unlinkFree(block: number, k: number): boolean {
    if (block + 2 ** k > Atomics.load(this.i32, TOP)) return false;
    this.cover(block + BLOCK_HEADER);
    const unit = (block - BASE) >> 6;
    const bits = (BITMAP >> 2) + (unit >> 5);
    const w = block >> 2;
    for (;;) {
      const i32 = this.i32;
      const limit = i32.length << 2;
      if (!lock(i32, this.#holder)) return false;
      if (((i32[bits] as number) & (1 << unit)) === 0 || i32[w + B_CLASS] !== k) {
        unlock(i32);
        return false;
      }
      const next = i32[w + B_NEXT] as number;
      const prev = i32[w + B_PREV] as number;
      if (next + BLOCK_HEADER > limit || prev + BLOCK_HEADER > limit) {
        unlock(i32);
        this.#views();
        continue;
      }
      if (prev === 0) i32[HEADS + k] = next;
      else i32[(prev >> 2) + B_NEXT] = next;
      if (next !== 0) i32[(next >> 2) + B_PREV] = prev;
      else if (prev === 0) i32[FREE_MASK] = (i32[FREE_MASK] as number) & ~(1 << k);
      i32[bits] = (i32[bits] as number) & ~(1 << unit);
      i32[w + B_KIND] = KIND_HELD;
      i32[FREE_BYTES] = (i32[FREE_BYTES] as number) - 2 ** k;
      unlock(i32);
      return true;
    }
  }

  /**
   * Puts `block` (in this thread's views), of class `k`, first in its free list; in its quick
   * list when the lock cannot be had (false then).
   */
  #push(block: number, k: number): boolean {
    for (;;) {
      const i32 = this.i32;
      if (!lock(i32, this.#holder)) {
        this.#pushQuick(block, k);
        return false;
      }
      if ((i32[HEADS + k] as number) + BLOCK_HEADER > i32.length << 2) {
        unlock(i32);
        this.#views();
        continue;
      }
      this.#link(block, k);
      unlock(i32);
      return true;
    }
  }

  /** Links `block` first in the free list of class `k`; the lock is held. */
  #link(block: number, k: number): void {
    const i32 = this.i32;
    const w = block >> 2;
    const unit = (block - BASE) >> 6;
    const bits = (BITMAP >> 2) + (unit >> 5);
    const head = i32[HEADS + k] as number;
    i32[w + B_NEXT] = head;
    i32[w + B_PREV] = 0;
    if (head !== 0) i32[(head >> 2) + B_PREV] = block;
    i32[HEADS + k] = block;
    i32[FREE_MASK] = (i32[FREE_MASK] as number) | (1 << k);
    i32[bits] = (i32[bits] as number) | (1 << unit);
    i32[w + B_KIND] = KIND_FREE;
    i32[FREE_BYTES] = (i32[FREE_BYTES] as number) + 2 ** k;
  }

  /** The lock word's holder for this thread. */
  get #holder(): number {
    return this.#thread || UNNAMED;
  }

  /**
   * Takes over the allocator's lock if one of the `dead` thread entries held it, and rebuilds
   * the free lists from the block headers: what that thread was changing under the lock may be
   * half done. Blocks it held out of every list stay lost, a few at most.
   */
  recover(dead: Set<number>): void {
    const i32 = this.i32;
    const held = Atomics.load(i32, LOCK);
    if (!dead.has(held & ~1)) return;
    if (Atomics.compareExchange(i32, LOCK, held, this.#holder | 1) !== held) return;
    this.#rebuildFreeLists();
    unlock(i32);
    if (arenaEvents.hasSubscribers) arenaEvents.publish({ event: 'recover', ...this.stats() });
  }

  /**
   * Empties the free lists, then links every block whose header says free into them, walking
   * the headers from the bottom; the lock is held. A walk ends at a header not written yet
   * (a block another thread is reserving at the top), as in `blocks`.
   */
  #rebuildFreeLists(): void {
    const top = Atomics.load(this.i32, TOP);
    this.cover(top);
    const i32 = this.i32;
    i32.fill(0, HEADS, HEADS + MAX_CLASS + 1);
    i32[FREE_MASK] = 0;
    i32[FREE_BYTES] = 0;
    i32.fill(0, BITMAP >> 2, (BITMAP >> 2) + ((top - BASE) >> 11) + 1);
    for (let block = BASE; block < top; ) {
      const k = i32[(block >> 2) + B_CLASS] as number;
      if (k < MIN_CLASS || k > MAX_CLASS || (block - BASE) % 2 ** k !== 0) return;
      if (i32[(block >> 2) + B_KIND] === KIND_FREE) this.#link(block, k);
      block += 2 ** k;
    }
  }

  /**
   * A new block of class `k` at the top of the block area, aligned to its size; the gap that
   * alignment leaves below it goes to the free lists.
   */
  #bump(k: number): number {
    const i32 = this.i32;
    const size = 2 ** k;
    let top: number;
    let block: number;
    for (;;) {
      top = Atomics.load(i32, TOP);
      block = BASE + Math.ceil((top - BASE) / size) * size;
      if (block + size > ARENA_RESERVE) return 0;
      if (Atomics.compareExchange(i32, TOP, top, block + size) === top) break;
    }
    const end = block + size;
    while (this.buffer.byteLength < end) {
      const want = Math.min(
        ARENA_RESERVE,
        Math.ceil(Math.max(end, this.buffer.byteLength * 1.5) / GROW_STEP) * GROW_STEP,
      );
      try {
        growable(this.buffer).grow(want);
      } catch {
        // Another thread grew it past `want` meanwhile.
      }
      if (arenaEvents.hasSubscribers) arenaEvents.publish({ event: 'grow', ...this.stats() });
    }
    this.cover(end);
    const view = this.i32;
    // The gap, in the largest aligned blocks that fit, each of them free.
    for (let at = top; at < block; ) {
      let j = Math.min(31 - Math.clz32((at - BASE) & -(at - BASE)), k - 1);
      while (at + 2 ** j > block) j--;
      view[(at >> 2) + B_CLASS] = j;
      view[(at >> 2) + B_KIND] = KIND_HELD;
      this.#push(at, j);
      at += 2 ** j;
    }
    view[(block >> 2) + B_CLASS] = k;
    view[(block >> 2) + B_KIND] = KIND_HELD;
    return block;
  }

  #quickBytes(): number {
    let bytes = 0;
    for (let k = MIN_CLASS; k <= MAX_CLASS; k++)
      bytes += Atomics.load(this.i32, QUICK_COUNT + k) * 2 ** k;
    return bytes;
  }

  stats(): ArenaStats {
    const i32 = this.i32;
    return {
      id: this.id,
      reserved: ARENA_RESERVE,
      size: this.buffer.byteLength,
      used: Atomics.load(i32, TOP) - BASE,
      freeBytes: Atomics.load(i32, FREE_BYTES) + this.#quickBytes(),
      liveBytes: Atomics.load(i32, LIVE_BYTES),
      liveBlocks: Atomics.load(i32, LIVE_BLOCKS),
    };
  }

  /** Payload offsets of the blocks of `kind` in use, for a scan after a thread died. */
  *blocks(kind: number): Generator<number> {
    const top = Atomics.load(this.i32, TOP);
    this.cover(top);
    for (let block = BASE; block < top; ) {
      const k = Atomics.load(this.i32, (block >> 2) + B_CLASS);
      // A header not written yet (reserved an instant ago, by a live thread), or one that a
      // merge in another thread just made part of a larger block: the scan ends there.
      if (k < MIN_CLASS || k > MAX_CLASS || (block - BASE) % 2 ** k !== 0) return;
      if (Atomics.load(this.i32, (block >> 2) + B_KIND) === kind) yield block + BLOCK_HEADER;
      block += 2 ** k;
    }
  }

  #register(): number {
    const entry = this.#vacantEntry() || this.#newEntry();
    const i32 = this.i32;
    const w = entry >> 2;
    i32[w + T_ID] = threadId;
    i32[w + T_PARENT] = parentThreadId;
    Atomics.store(i32, w + T_ALIVE, ALIVE);
    Atomics.add(i32, ENTRIES, 1);
    watchThreadWord(this, w);
    return entry;
  }

  /** A new entry, first in the thread list (which only ever grows, so walks need no care). */
  #newEntry(): number {
    const entry = this.alloc(ENTRY_BYTES, KIND_THREAD);
    if (entry === 0) throw exhausted(ENTRY_BYTES, this);
    const i32 = this.i32;
    const w = entry >> 2;
    i32.fill(0, w, w + ENTRY_BYTES / 4);
    Atomics.store(i32, w + T_ALIVE, CLAIMED);
    for (;;) {
      const head = Atomics.load(i32, THREADS);
      i32[w + T_NEXT] = head;
      if (Atomics.compareExchange(i32, THREADS, head, entry) === head) return entry;
    }
  }

  /**
   * The entry of a thread that died, claimed for this one. A dead thread's entry is never
   * freed for other uses: a thread that read its offset before the death was handled may
   * still notify it, which must not write into a ring or a slot.
   */
  #vacantEntry(): number {
    for (let e = Atomics.load(this.i32, THREADS); e !== 0; ) {
      this.cover(e + ENTRY_BYTES);
      const w = e >> 2;
      if (Atomics.compareExchange(this.i32, w + T_ALIVE, VACANT, CLAIMED) === VACANT) {
        Atomics.add(this.i32, LIVE_BLOCKS, 1);
        Atomics.add(this.i32, LIVE_BYTES, ENTRY_BLOCK);
        // Not T_NEXT: the entry stays linked in the thread list, and so do the ones after it.
        this.i32[w + T_WAKE] = 0;
        this.i32.fill(0, w + T_OVERFLOW, w + ENTRY_BYTES / 4);
        return e;
      }
      e = Atomics.load(this.i32, w + T_NEXT);
    }
    return 0;
  }

  /**
   * Tells the thread whose entry is `entry` that what `key` names changed (see PIPE_KEY): in
   * the entry's mailbox, so that the thread looks at that alone; when the mailbox is full,
   * the thread looks at everything it holds in this arena.
   */
  notifyThread(entry: number, key: number): void {
    // 0 or negative: the side is travelling (see SharedEndpoint.moveOut).
    if (entry <= 0) return;
    if (entry === this.#thread) {
      deliver(this, key);
      return;
    }
    this.cover(entry + ENTRY_BYTES);
    const i32 = this.i32;
    const w = entry >> 2;
    const slot = Atomics.add(i32, w + T_MAIL_HEAD, 1) & (MAIL_SLOTS - 1);
    if (Atomics.compareExchange(i32, w + T_MAIL + slot, 0, key) !== 0) {
      Atomics.store(i32, w + T_OVERFLOW, 1);
    }
    if (Atomics.compareExchange(i32, w + T_WAKE, 0, 1) === 0) Atomics.notify(i32, w + T_WAKE);
  }

  /** Marks the entries of thread `id` and of the threads it started dead; returns them. */
  markDead(id: number): Set<number> {
    const entries: number[] = [];
    for (let e = Atomics.load(this.i32, THREADS); e !== 0; ) {
      this.cover(e + ENTRY_BYTES);
      entries.push(e);
      e = Atomics.load(this.i32, (e >> 2) + T_NEXT);
    }
    const i32 = this.i32;
    const alive = (e: number) => Atomics.load(i32, (e >> 2) + T_ALIVE) === ALIVE;
    const deadIds = new Set([id]);
    for (let grew = true; grew; ) {
      grew = false;
      for (const e of entries) {
        const tid = i32[(e >> 2) + T_ID] as number;
        if (alive(e) && !deadIds.has(tid) && deadIds.has(i32[(e >> 2) + T_PARENT] as number)) {
          deadIds.add(tid);
          grew = true;
        }
      }
    }
    const dead = new Set<number>();
    for (const e of entries) {
      if (!alive(e) || !deadIds.has(i32[(e >> 2) + T_ID] as number)) continue;
      if (Atomics.compareExchange(i32, (e >> 2) + T_ALIVE, ALIVE, DEAD) === ALIVE) dead.add(e);
    }
    return dead;
  }

  /**
   * Makes the entries of dead threads vacant once what they owned was closed: no longer in
   * use (a thread that dies leaves no block in use behind), kept for the next thread.
   */
  forget(dead: Set<number>): void {
    const i32 = this.i32;
    for (const e of dead) {
      if (Atomics.compareExchange(i32, (e >> 2) + T_ALIVE, DEAD, VACANT) !== DEAD) continue;
      Atomics.sub(i32, ENTRIES, 1);
      Atomics.sub(i32, LIVE_BYTES, ENTRY_BLOCK);
      const blocks = Atomics.sub(i32, LIVE_BLOCKS, 1) - 1;
      this.#retireIfIdle(Atomics.load(i32, LIVE_BYTES), blocks);
    }
  }
}

/** Shared memory ran out: `bytes` were asked for, with what the arena had at the time. */
export function exhausted(bytes: number, arena: Arena): IpcError {
  const s = arena.stats();
  const why =
    Atomics.load(arena.i32, LOCK) === 0
      ? `${s.liveBytes} of ${AREA} bytes in use (${s.freeBytes} free, in smaller pieces); close channels or lower their limits`
      : `the allocator's lock was held by another thread for ${LOCK_PATIENCE_MS} ms, most likely one that a terminate() ended while it allocated; its parent thread takes the lock over when it sees the exit, so try again`;
  return new IpcError(
    'RESOURCE_EXHAUSTED',
    `the shared memory for channels between threads is exhausted: ${bytes} bytes requested, ${why}`,
  );
}

const ENV_ARENA = 'ftl-ipc/arena';
const ENV_PARENT = 'ftl-ipc/thread';
const parentThreadId = (getEnvironmentData(ENV_PARENT) as number | undefined) ?? -1;
setEnvironmentData(ENV_PARENT, threadId);

const known = new Map<number, Arena>();
const announce = new BroadcastChannel('ftl-ipc/arenas');
announce.unref();
announce.onmessage = (event) => heard((event as MessageEvent).data);

/**
 * Whether this thread's parent has told it every arena it knows. A thread's environment data is
 * a copy taken when it was started; an arena its parent made or heard of after that, before
 * this thread's BroadcastChannel opened, was announced to nobody here. So a new thread says
 * hello, and its parent announces every arena it knows again, then welcomes it.
 */
let welcomed = parentThreadId === -1;
/** How long a thread not yet welcomed waits for its parent's answer (see `arenaOf`). */
const WELCOME_PATIENCE_MS = 1000;
const pause = new Int32Array(new SharedArrayBuffer(4));

/** An arena announced, one that became empty, or a new thread's hello and its welcome. */
function heard(value: unknown): void {
  const m = (value ?? {}) as {
    empty?: unknown;
    hello?: unknown;
    parent?: unknown;
    welcome?: unknown;
  };
  if (typeof m.empty === 'number') {
    const arena = known.get(m.empty);
    if (arena !== undefined) letGo(arena);
  } else if (typeof m.hello === 'number') {
    if (m.parent !== threadId) return;
    for (const arena of known.values()) announce.postMessage(arena.buffer);
    announce.postMessage({ welcome: m.hello });
  } else if (typeof m.welcome === 'number') {
    if (m.welcome === threadId) welcomed = true;
  } else if (adoptBuffer(value) !== undefined) publishArenas();
}

/**
 * Hands every arena this thread knows, its home first, to the threads it starts from now on.
 * Not the home alone: a pair made before the home retired lives on in the old arena, and a
 * thread started since that is sent one of its ends must know that arena to take it.
 */
function publishArenas(): void {
  const others = [...known.values()].filter((a) => a !== home).map((a) => a.buffer);
  setEnvironmentData(ENV_ARENA, [home.buffer, ...others]);
}

/**
 * Forgets a retired arena that became empty, in this thread: with every thread doing so, its
 * memory goes back to the operating system once the garbage collectors let go of it.
 */
function letGo(arena: Arena): void {
  if (!arena.empty || known.get(arena.id) !== arena) return;
  if (home === arena) home = arena.successor();
  known.delete(arena.id);
  arena.released = true;
  // Ends this thread's wait on its wake word there, which holds the memory.
  if (arena.entry !== 0) Atomics.notify(arena.i32, (arena.entry >> 2) + T_WAKE);
  publishArenas();
  if (arenaEvents.hasSubscribers) arenaEvents.publish({ event: 'release', ...arena.stats() });
}

function adoptBuffer(value: unknown): Arena | undefined {
  if (!(value instanceof SharedArrayBuffer) || !growable(value).growable) return undefined;
  const id = new Int32Array(value, 0, 4)[ID] as number;
  let arena = known.get(id);
  if (arena === undefined) {
    arena = new Arena(value);
    // An announcement that came late, of an arena nobody uses any more.
    if (arena.empty) return undefined;
    known.set(id, arena);
  }
  return arena;
}

/** A new arena, announced to every thread. */
function newArena(): Arena {
  const arena = Arena.create();
  known.set(arena.id, arena);
  announce.postMessage(arena.buffer);
  if (arenaEvents.hasSubscribers) arenaEvents.publish({ event: 'create', ...arena.stats() });
  return arena;
}

let home: Arena = (() => {
  const inherited = getEnvironmentData(ENV_ARENA);
  const arenas = (Array.isArray(inherited) ? inherited : []).map(adoptBuffer);
  return arenas.find((a) => a !== undefined) ?? newArena();
})();
publishArenas();
if (!welcomed) announce.postMessage({ hello: threadId, parent: parentThreadId });

/** The arena new pairs are allocated from in this thread. */
export function homeArena(): Arena {
  return home;
}

/**
 * Allocates from the home arena (its successor once it retired), and from a new one
 * (announced to every thread) when it is full. Throws when even a new arena cannot hold it.
 */
export function allocate(bytes: number, kind: number): { arena: Arena; offset: number } {
  if (home.retired) {
    while (home.retired) home = home.successor();
    publishArenas();
  }
  let offset = home.alloc(bytes, kind);
  if (offset === 0 && bytes + BLOCK_HEADER <= MAX_BLOCK) {
    home = newArena();
    publishArenas();
    offset = home.alloc(bytes, kind);
  }
  if (offset === 0) throw exhausted(bytes, home);
  return { arena: home, offset };
}

/** The arena with this id; `buffer` (from a token) registers it when it is new here. */
export function arenaOf(id: number, buffer?: SharedArrayBuffer): Arena {
  let arena = known.get(id);
  if (arena === undefined && buffer !== undefined) {
    arena = adoptBuffer(buffer);
    if (arena !== undefined) publishArenas();
  }
  // Announced by a thread that made it: the announcement is queued here already, or comes
  // with the parent's welcome.
  let deadline = 0;
  while (arena === undefined) {
    const m = receiveMessageOnPort(announce as unknown as MessagePort);
    if (m !== undefined) {
      heard(m.message);
      arena = known.get(id);
      continue;
    }
    if (welcomed) break;
    const now = performance.now();
    if (deadline === 0) deadline = now + WELCOME_PATIENCE_MS;
    else if (now > deadline) {
      // A parent that does not answer (the library is not loaded there): no waiting again.
      welcomed = true;
      break;
    }
    Atomics.wait(pause, 0, 0, 1);
  }
  if (arena === undefined) {
    throw new IpcError('INVALID_MESSAGE', `a message names shared memory ${id} unknown here`);
  }
  return arena;
}

/** Every arena this thread knows. */
export function arenas(): IterableIterator<Arena> {
  return known.values();
}

/** Shared memory of the arenas this thread knows; also published on `ftl-ipc:worker:arena`. */
export function sharedMemoryStats(): ArenaStats[] {
  return [...known.values()].map((a) => a.stats());
}

/**
 * What to do when another thread wakes this one: channels and pipes look at the ends the keys
 * name, or at all of theirs in the arena for `null`.
 */
type WakeHandler = (arena: Arena, keys: Set<number> | null) => void;
const wakeHandlers: WakeHandler[] = [];
/** Keys to look at, per arena, when the current task ends; `null` for everything. */
const pending = new Map<Arena, Set<number> | null>();

export function onThreadWake(handler: WakeHandler): void {
  wakeHandlers.push(handler);
}

function deliver(arena: Arena, key: number | null): void {
  if (pending.size === 0) queueMicrotask(runWakeHandlers);
  const keys = pending.get(arena);
  if (key === null) pending.set(arena, null);
  else if (keys === undefined) pending.set(arena, new Set([key]));
  else keys?.add(key);
}

function runWakeHandlers(): void {
  const due = [...pending];
  pending.clear();
  for (const [arena, keys] of due) for (const handler of wakeHandlers) handler(arena, keys);
}

/**
 * Waits on this thread's wake word in `arena` for good (a pending waitAsync does not keep a
 * thread alive), emptying the mailbox of entry `w` at each wake-up.
 */
function watchThreadWord(arena: Arena, w: number): void {
  const i32 = new Int32Array(arena.buffer, 0, w + ENTRY_BYTES / 4);
  const word = w + T_WAKE;
  const loop = (): void => {
    if (arena.released) return;
    Atomics.store(i32, word, 0);
    if (Atomics.exchange(i32, w + T_OVERFLOW, 0) === 1) deliver(arena, null);
    for (let k = 0; k < MAIL_SLOTS; k++) {
      const key = Atomics.exchange(i32, w + T_MAIL + k, 0);
      if (key !== 0) deliver(arena, key);
    }
    const result = waitAsync(i32, word, 0);
    if (result.async) void result.value.then(loop);
    else setImmediate(loop);
  };
  const first = waitAsync(i32, word, 0);
  if (first.async) void first.value.then(loop);
  else setImmediate(loop);
}

/** Called with each arena and the entries of the threads that died, in the parent's thread. */
const deathHandlers: ((arena: Arena, entries: Set<number>) => void)[] = [];

export function onThreadsDied(handler: (arena: Arena, entries: Set<number>) => void): void {
  deathHandlers.push(handler);
}

// A worker's parent sees it exit; the worker itself cannot say so. Its descendants die with it.
process.on('worker', (worker) => {
  const id = worker.threadId;
  worker.once('exit', () => {
    for (const arena of known.values()) {
      const dead = arena.markDead(id);
      if (dead.size === 0) continue;
      arena.recover(dead);
      for (const handler of deathHandlers) handler(arena, dead);
      arena.freeClaimed(dead);
      arena.forget(dead);
    }
  });
});
