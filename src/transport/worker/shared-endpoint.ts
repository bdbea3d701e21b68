/**
 * One side of a channel pair whose two sides may live in different threads: messages go
 * through a ring per direction in the shared arena of the process (src/shm/arena.ts), handles
 * as small descriptors in arena blocks. No MessagePort belongs to a pair: a move inside a
 * message transfers nothing (an exported token carries one port, only to watch its hand-over),
 * and a closed pair returns its memory at once. A side learns that
 * its peer's thread died from that thread's parent, which marks what the thread owned (see
 * `onThreadsDied`), and that its peer closed from the wake word of its own thread.
 */
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { copyRange, SMALL_COPY } from '../../channel/copy.js';
import type {
  ChannelLimits,
  Endpoint,
  EndpointCounters,
  EndpointEvents,
  HandleState,
  RawMessage,
  SendStatus,
} from '../../channel/endpoint.js';
import { SEND_FULL, SEND_OK, SEND_PEER_CLOSED } from '../../channel/endpoint.js';
import { LocalEndpoint, newCounters } from '../../channel/local.js';
import { IpcError, isIpcError } from '../../errors.js';
import { PipeEndState } from '../../pipe/pipe.js';
import {
  checkPipeMovable,
  dropPipeHandle,
  readPipeHandle,
  writePipeHandle,
} from '../../pipe/thread.js';
import {
  type Arena,
  allocate,
  arenaOf,
  exhausted,
  KIND_RING,
  KIND_SLOT,
  onThreadsDied,
  onThreadWake,
  PIPE_KEY,
} from '../../shm/arena.js';
import {
  holdThread,
  type ResolvedWakePolicy,
  releaseThread,
  resolveWakePolicy,
  Spinner,
  type WakePolicy,
  waitAsync,
} from '../../shm/wake.js';
import {
  C_BYTES,
  C_MSGS,
  C_RING,
  C_TAIL,
  C_TAKEN,
  CLOSED,
  checkRingLimits,
  GENERATION,
  HANDLE_BYTES,
  HWM,
  MIN_RING_BLOCK,
  MOVED,
  maxRingBytes,
  OWNER,
  P_BYTES,
  P_HEAD,
  P_MSGS,
  P_RING,
  P_RING_START,
  PAIR_ID,
  R_NEXT,
  READER_WAKE,
  READER_WOKEN_AT,
  RECORD_HEADER,
  RELEASED,
  RING_HEADER,
  recordSize,
  ringControl,
  SHRINK_ABOVE,
  SHRINK_AFTER,
  SLOT_BYTES,
  WRAP,
  WRITER_WAKE,
  WRITER_WOKEN_AT,
} from './layout.js';
import { Relay } from './relay.js';

const NO_HANDLES: HandleState[] = [];
const EMPTY = new Uint8Array(0);
const TOKEN_VERSION = 'ftl-ipc/channel@2';
/** Kinds of handle descriptors in a message. */
const HANDLE_CHANNEL = 1;
const HANDLE_PIPE = 2;
/** At the end of a handles block: how many handles, and the number of their message. */
const HAND_OVER_BYTES = 8;

/**
 * A channel endpoint on its way to another thread: structured-cloneable once `port` is in the
 * transfer list (the arena is a SharedArrayBuffer, shared on clone). Import it exactly once. The
 * port closes when the thread the token went to ends, which tells the peer if that thread died
 * before it imported the token; a handle inside a message needs no port (its reader owns it).
 */
export interface EndpointToken {
  readonly version: typeof TOKEN_VERSION;
  readonly memory: SharedArrayBuffer;
  readonly arena: number;
  readonly slot: number;
  readonly side: number;
  readonly generation: number;
  readonly pairId: number;
  readonly port: MessagePort;
  /** What `postMessage` or `new Worker` must transfer with the token. */
  readonly transfer: [MessagePort];
  readonly limits: ChannelLimits;
  readonly counters: Omit<EndpointCounters, 'highWaterMark'>;
}

/** A side on its way to another thread: what a token or a handle descriptor carries. */
interface Travel {
  readonly arena: Arena;
  readonly slot: number;
  readonly side: number;
  readonly generation: number;
  readonly pairId: number;
  readonly limits: ChannelLimits;
  readonly counters: Omit<EndpointCounters, 'highWaterMark'>;
}

interface Watch {
  /** A Channel waits for this; one-shot, like the Endpoint's arm calls. */
  armed: boolean;
  /** A waitAsync on `word` is pending. */
  sleeping: boolean;
  readonly word: number;
  readonly wokenAt: number;
  readonly ready: () => boolean;
  /** Apart for reading and for room: how long one waits says nothing about the other. */
  readonly spinner: Spinner;
}

function watch(
  word: number,
  wokenAt: number,
  policy: ResolvedWakePolicy,
  ready: () => boolean,
): Watch {
  return { armed: false, sleeping: false, word, wokenAt, ready, spinner: new Spinner(policy) };
}

/**
 * Wakes the other side if it sleeps on `word`; only the sleeper clears its own flag. The time
 * goes to the float64 at int32 index `wokenAt`, where the sleeper reads it after waking.
 */
function wakeIfSleeping(i32: Int32Array, f64: Float64Array, word: number, wokenAt: number): void {
  if (Atomics.load(i32, word) === 1 && Atomics.compareExchange(i32, word, 1, 2) === 1) {
    f64[wokenAt >> 1] = epochNow();
    Atomics.notify(i32, word, 1);
  }
}

/** Wakes whoever sleeps on `word` (1 sleeping, 2 already notified); only the sleeper clears it. */
function notifyIfSleeping(i32: Int32Array, word: number): void {
  if (Atomics.load(i32, word) !== 0) Atomics.notify(i32, word);
}

/** A clock that agrees across threads (performance.now() starts anew in each worker). */
function epochNow(): number {
  return performance.timeOrigin + performance.now();
}

function randomPairId(): number {
  return (Math.random() * 2 ** 31) | 0 || 1;
}

/**
 * The sides living in this thread, by slot. A close wakes a peer in the same thread directly,
 * and a wake-up of this thread (a peer closed elsewhere) looks at each of them.
 */
const sidesHere = new WeakMap<Arena, Map<number, SharedEndpoint>>();

/** The sides here in `arena`, by slot + side (slots are 16-byte aligned: the low bits are free). */
function sidesIn(arena: Arena): Map<number, SharedEndpoint> {
  let sides = sidesHere.get(arena);
  if (sides === undefined) {
    sides = new Map();
    sidesHere.set(arena, sides);
  }
  return sides;
}

/**
 * Lets go of side `side` of a slot; the second side to do so frees the slot and every ring in
 * it, whichever thread it is in.
 */
function release(arena: Arena, slot: number, side: number): void {
  const i32 = arena.i32;
  const c = slot >> 2;
  const before = Atomics.or(i32, c + RELEASED, 1 << side);
  if (before !== 1 << (1 - side)) return;
  for (let ring = 0; ring < 2; ring++) dropUnread(arena, c + ringControl(ring));
  for (let ring = 0; ring < 2; ring++) {
    let r = Atomics.load(i32, c + ringControl(ring) + C_RING);
    while (r !== 0) {
      const next = i32[(r + R_NEXT) >> 2] as number;
      arena.free(r);
      r = next;
    }
  }
  arena.free(slot);
}

/**
 * Reads, in place of a consumer that died or will never arrive, the messages of the direction
 * at `control`: the handles they carry are closed, so the far ends of those handles learn it,
 * and their blocks and the rings passed are freed. Leaves the consumer's state where it
 * stopped, so a later call sees only what came after.
 */
function dropUnread(arena: Arena, control: number): void {
  arena.cover(arena.buffer.byteLength);
  const i32 = arena.i32;
  const sent = Atomics.load(i32, control + P_MSGS);
  let count = (sent - Atomics.load(i32, control + C_TAKEN)) >>> 0;
  let ring = Atomics.load(i32, control + C_RING);
  let at = Atomics.load(i32, control + C_TAIL);
  while (count > 0 && ring !== 0) {
    const data = ring + RING_HEADER;
    const len = i32[(data + at) >> 2] as number;
    if (len === WRAP) {
      at = 0;
    } else if (len === MOVED) {
      const next = i32[(ring + R_NEXT) >> 2] as number;
      // In the consumer's order (see #nextInRing): a producer still writing reads them.
      Atomics.store(i32, control + C_TAIL, 0);
      Atomics.store(i32, control + C_RING, next);
      arena.free(ring);
      ring = next;
      at = 0;
    } else {
      const w = (data + at) >> 2;
      const handles = i32[w + 2] as number;
      const block = i32[w + 3] as number;
      if (block !== 0) {
        for (let i = 0; i < handles; i++) dropHandle(arena, (block + i * HANDLE_BYTES) >> 2);
        arena.free(block);
      }
      at += recordSize(len);
      if (at === arena.sizeOf(ring) - RING_HEADER) at = 0;
      count--;
    }
  }
  i32[control + C_TAKEN] = sent;
  Atomics.store(i32, control + C_TAIL, at);
}

/**
 * Closes side `side` of a slot for a thread that cannot (it died, or the side died unread in
 * a message): wakes the peer and its thread, and lets go of the side.
 */
function closeSide(arena: Arena, slot: number, side: number): void {
  const i32 = arena.i32;
  const c = slot >> 2;
  if (Atomics.exchange(i32, c + CLOSED + side, 1) === 1) return;
  notifyIfSleeping(i32, c + ringControl(side) + READER_WAKE);
  notifyIfSleeping(i32, c + ringControl(1 - side) + WRITER_WAKE);
  arena.notifyThread(Atomics.load(i32, c + OWNER + 1 - side), slot + 1 - side);
  // What was sent to this side dies unread now, not when the peer closes too.
  dropUnread(arena, c + ringControl(1 - side));
  release(arena, slot, side);
}

function dropHandle(arena: Arena, w: number): void {
  const i32 = arena.i32;
  if (i32[w] === HANDLE_PIPE) {
    dropPipeHandle(arena, w + 1);
  } else if (i32[w] === HANDLE_CHANNEL) {
    const home = arenaOf(i32[w + 1] as number);
    home.cover(home.buffer.byteLength);
    closeSide(home, i32[w + 2] as number, i32[w + 3] as number);
  }
}

export class SharedEndpoint implements Endpoint {
  readonly kind = 'channel';
  events: EndpointEvents | undefined;
  readonly limits: ChannelLimits;
  readonly counters: EndpointCounters;
  readonly #arena: Arena;
  readonly #slot: number;
  readonly #pairId: number;
  #i32: Int32Array;
  #f64: Float64Array;
  #u8: Uint8Array;
  readonly #side: number;
  /** Int32 index of the slot, of the direction this side writes, and of the one it reads. */
  readonly #c: number;
  readonly #out: number;
  readonly #in: number;
  /** Largest ring data a direction needs under these limits. */
  readonly #maxRing: number;
  /** Producer: its ring (block payload offset, 0 before the first send), data start and size. */
  #outRing: number;
  #outData = 0;
  #outSize = 0;
  /** Messages written before the current ring: the consumer's tail is in it only past them. */
  #ringStart: number;
  /** Writes into the current ring, and its largest record: whether it is larger than needed. */
  #ringWrites = 0;
  #ringLargest = 0;
  /** Producer cursor, and what it last saw of its consumer's progress. */
  #head: number;
  #sentMsgs: number;
  #sentBytes: number;
  #seenTakenMsgs: number;
  #seenTakenBytes: number;
  #hwm: number;
  /** Consumer: the ring it reads (0 before the first message), its data start and size. */
  #inRing: number;
  #inData = 0;
  #inSize = 0;
  #tail: number;
  #takenMsgs: number;
  #takenBytes: number;
  /** Taken with `takeHeld` and not yet released: a forwarder's messages in flight. */
  #heldMsgs = 0;
  #heldBytes = 0;
  #seenSentMsgs: number;
  /** Takes not yet published to the producer; see #taken(). */
  #unpublished = 0;
  #publishQueued = false;
  readonly #publishEvery: number;
  /** Made on the first take: many sides never read. */
  #publishLater: (() => void) | undefined;
  /** What was taken when the producer was last woken; see #publishTaken(). */
  #wokenAtMsgs = 0;
  #wokenAtBytes = 0;
  /** Between `deferSends` and `flushSends`: writes are published at the flush. */
  #deferring = false;
  /** Consumer progress when the last send found no room: a change means room may be back. */
  #writeMark = 0;
  #peerReported = false;
  /** Closed here or moved to another thread: nothing in this object may touch the slot. */
  #gone = false;
  /** Waiting for a message to read, and for room (the consumer's progress) to send. */
  #read: Watch | undefined;
  #room: Watch | undefined;
  readonly #policy: ResolvedWakePolicy;

  private constructor(
    arena: Arena,
    slot: number,
    side: number,
    limits: ChannelLimits,
    counters: Omit<EndpointCounters, 'highWaterMark'>,
    policy: ResolvedWakePolicy,
  ) {
    this.#arena = arena;
    this.#slot = slot;
    arena.cover(slot + SLOT_BYTES);
    this.#i32 = arena.i32;
    this.#f64 = arena.f64;
    this.#u8 = arena.u8;
    const i32 = this.#i32;
    const c = slot >> 2;
    this.#c = c;
    this.#pairId = i32[c + PAIR_ID] as number;
    this.#side = side;
    this.limits = limits;
    this.#maxRing = maxRingBytes(limits);
    this.#publishEvery = Math.min(64, Math.ceil(limits.capacity / 4));
    this.#out = c + ringControl(side);
    this.#in = c + ringControl(1 - side);
    this.#head = i32[this.#out + P_HEAD] as number;
    this.#outRing = i32[this.#out + P_RING] as number;
    this.#ringStart = i32[this.#out + P_RING_START] as number;
    this.#sentMsgs = i32[this.#out + P_MSGS] as number;
    this.#sentBytes = i32[this.#out + P_BYTES] as number;
    this.#hwm = i32[this.#out + HWM] as number;
    this.#seenTakenMsgs = Atomics.load(i32, this.#out + C_MSGS);
    this.#seenTakenBytes = Atomics.load(i32, this.#out + C_BYTES);
    this.#tail = i32[this.#in + C_TAIL] as number;
    this.#inRing = Atomics.load(i32, this.#in + C_RING);
    this.#takenMsgs = i32[this.#in + C_MSGS] as number;
    this.#takenBytes = i32[this.#in + C_BYTES] as number;
    this.#seenSentMsgs = Atomics.load(i32, this.#in + P_MSGS);
    if (this.#outRing !== 0) this.#enterOut(this.#outRing);
    if (this.#inRing !== 0) this.#enterIn(this.#inRing);
    this.#policy = policy;
    const inHwm = this.#in + HWM;
    this.counters = {
      ...counters,
      // The producer keeps it in shared memory, where it survives moves.
      get highWaterMark() {
        return Atomics.load(i32, inHwm);
      },
    };
    // The previous owner may have left its wake words set when it moved away.
    Atomics.store(i32, this.#in + READER_WAKE, 0);
    Atomics.store(i32, this.#out + WRITER_WAKE, 0);
    Atomics.store(i32, c + OWNER + side, arena.thread);
    sidesIn(arena).set(slot + side, this);
    // A peer that closed before this side arrived is seen by the adopting Channel itself.
    this.#peerReported = this.peerClosed;
  }

  /**
   * Creates a new pair in a slot of this thread's arena and side 0 of it here; side 1 is made
   * only where it is adopted (see `travelOf`).
   */
  static open(
    limits: ChannelLimits,
    counters: [EndpointCounters, EndpointCounters],
    policy: ResolvedWakePolicy,
  ): SharedEndpoint {
    checkRingLimits(limits);
    const { arena, offset } = allocate(SLOT_BYTES, KIND_SLOT);
    const i32 = arena.i32;
    const c = offset >> 2;
    // A reused block holds what its last pair left.
    i32.fill(0, c, c + SLOT_BYTES / 4);
    i32[c + PAIR_ID] = randomPairId();
    // Each side's receive queue keeps its high-water mark across the move into shared memory.
    i32[c + ringControl(1) + HWM] = counters[0].highWaterMark;
    i32[c + ringControl(0) + HWM] = counters[1].highWaterMark;
    return new SharedEndpoint(arena, offset, 0, limits, counters[0], policy);
  }

  /** Side 1 of a pair from `open`, adopted in this thread. */
  static other(side0: SharedEndpoint, counters: EndpointCounters): SharedEndpoint {
    return SharedEndpoint.#adopt(
      side0.#arena,
      side0.#slot,
      1,
      0,
      side0.#pairId,
      side0.limits,
      counters,
      side0.#policy,
    );
  }

  /** Side 1 of a pair from `open`, never adopted anywhere, ready to travel. */
  static otherTravelling(
    side0: SharedEndpoint,
    counters: Omit<EndpointCounters, 'highWaterMark'>,
  ): Travel {
    return { ...side0.#fresh(), counters: travelling(counters) };
  }

  #fresh(): Omit<Travel, 'counters'> {
    // This thread's until the message carrying it is sent, as for `moveOut`.
    Atomics.store(this.#i32, this.#c + OWNER + 1, -this.#arena.thread);
    const generation = Atomics.add(this.#i32, this.#c + GENERATION + 1, 1) + 1;
    return {
      arena: this.#arena,
      slot: this.#slot,
      side: 1,
      generation,
      pairId: this.#pairId,
      limits: this.limits,
    };
  }

  /** Adopts a token in this thread; throws INVALID_ARGUMENT for anything else. */
  static fromToken(token: EndpointToken, policy?: WakePolicy): SharedEndpoint {
    checkToken(token);
    const resolved = resolveWakePolicy(policy);
    let arena: Arena;
    try {
      arena = arenaOf(token.arena, token.memory);
    } catch (error) {
      if (!isIpcError(error, 'INVALID_MESSAGE')) throw error;
      // Every block of that arena was freed and every thread let go of it: imported already.
      throw new IpcError(
        'INVALID_ARGUMENT',
        `this endpoint token (side ${token.side}, generation ${token.generation}) was already imported`,
      );
    }
    return SharedEndpoint.#adopt(
      arena,
      token.slot,
      token.side,
      token.generation,
      token.pairId,
      Object.freeze({ ...token.limits }),
      token.counters,
      resolved,
    );
  }

  static #adopt(
    arena: Arena,
    slot: number,
    side: number,
    generation: number,
    pairId: number,
    limits: ChannelLimits,
    counters: Omit<EndpointCounters, 'highWaterMark'>,
    policy: ResolvedWakePolicy,
  ): SharedEndpoint {
    arena.cover(slot + SLOT_BYTES);
    const i32 = arena.i32;
    const c = slot >> 2;
    if (
      (i32[c + PAIR_ID] as number) !== pairId ||
      Atomics.compareExchange(i32, c + GENERATION + side, generation, generation + 1) !== generation
    ) {
      throw new IpcError(
        'INVALID_ARGUMENT',
        `this endpoint token (side ${side}, generation ${generation}) was already imported`,
      );
    }
    return new SharedEndpoint(arena, slot, side, limits, counters, policy);
  }

  get peerClosed(): boolean {
    return Atomics.load(this.#i32, this.#c + CLOSED + 1 - this.#side) === 1;
  }

  get queuedMessages(): number {
    if (this.#gone) return 0;
    return (Atomics.load(this.#i32, this.#in + P_MSGS) - this.#takenMsgs) >>> 0;
  }

  get queuedBytes(): number {
    if (this.#gone) return 0;
    return (Atomics.load(this.#i32, this.#in + P_BYTES) - this.#takenBytes) >>> 0;
  }

  canSend(bytes: number): SendStatus {
    if (this.#gone || this.peerClosed) return SEND_PEER_CLOSED;
    if (this.#fits(bytes)) return SEND_OK;
    // The cached view of the consumer is stale only in the safe direction: reload and retry.
    const i32 = this.#i32;
    this.#seenTakenMsgs = Atomics.load(i32, this.#out + C_MSGS);
    this.#seenTakenBytes = Atomics.load(i32, this.#out + C_BYTES);
    if (this.#fits(bytes)) return SEND_OK;
    this.#writeMark = this.#seenTakenMsgs;
    return SEND_FULL;
  }

  /**
   * All or nothing: whatever fails (room, peer, a handle, shared memory) fails before any
   * handle has moved, or after the handles that moved were given back, as they were.
   */
  trySend(type: number, data: Uint8Array, handles: readonly HandleState[]): SendStatus {
    for (const handle of handles) checkMovable(handle);
    const bytes = data.byteLength;
    const status = this.canSend(bytes);
    if (status !== SEND_OK) return status;
    const size = recordSize(bytes);
    const at = this.#place(size);
    const block = handles.length > 0 ? this.#writeHandles(handles) : 0;
    if (block !== 0) this.#handOver(block, handles.length);
    this.#write(at, size, type, data, handles.length, block);
    if (block !== 0) this.#arena.sent(block, this.#out);
    return SEND_OK;
  }

  /**
   * Gives the `count` handles described at `block` to the message about to be written, before
   * it is published: the block says which message it belongs to (the direction and the
   * message's number), then the sides in it lose this thread's mark. A thread that dies
   * between two of these stores, or after them but before the message is marked sent, leaves
   * enough for its parent to tell whether the message was published (its reader owns the
   * handles) or not (the parent closes them); see `onThreadsDied` below.
   */
  #handOver(block: number, count: number): void {
    const arena = this.#arena;
    const end = (block + arena.sizeOf(block)) >> 2;
    this.#i32[end - 2] = count;
    this.#i32[end - 1] = this.#sentMsgs;
    arena.handOver(block, this.#out);
    travelled(arena, block, count);
  }

  take(lend = false): RawMessage | undefined {
    return this.#take(false, lend);
  }

  /** Takes a message that stays counted against the queue (unpublished) until `release`. */
  takeHeld(): RawMessage | undefined {
    return this.#take(true, false);
  }

  release(messages: number, bytes: number): void {
    this.#heldMsgs -= messages;
    this.#heldBytes -= bytes;
    if (!this.#gone) this.#publishTaken(true);
  }

  /**
   * Reads the consumer's progress afresh (the cached view may be stale) and marks it, so that
   * `armWritable` then waits for progress beyond what this room already counts.
   */
  room(): { messages: number; bytes: number } {
    if (this.#gone || this.peerClosed) return { messages: 0, bytes: 0 };
    const i32 = this.#i32;
    this.#seenTakenMsgs = Atomics.load(i32, this.#out + C_MSGS);
    this.#seenTakenBytes = Atomics.load(i32, this.#out + C_BYTES);
    this.#writeMark = this.#seenTakenMsgs;
    return {
      messages: this.limits.capacity - ((this.#sentMsgs - this.#seenTakenMsgs) >>> 0),
      bytes: this.limits.capacityBytes - ((this.#sentBytes - this.#seenTakenBytes) >>> 0),
    };
  }

  /** Points the producer at `ring`, refreshing the views if another thread grew the arena. */
  #enterOut(ring: number): void {
    this.#outRing = ring;
    this.#outData = ring + RING_HEADER;
    this.#outSize = this.#arena.sizeOf(ring) - RING_HEADER;
    this.#refresh(this.#outData + this.#outSize);
  }

  #enterIn(ring: number): void {
    this.#inRing = ring;
    this.#inData = ring + RING_HEADER;
    this.#inSize = this.#arena.sizeOf(ring) - RING_HEADER;
    this.#refresh(this.#inData + this.#inSize);
  }

  #refresh(end: number): void {
    const arena = this.#arena;
    arena.cover(end);
    this.#i32 = arena.i32;
    this.#f64 = arena.f64;
    this.#u8 = arena.u8;
  }

  /**
   * What a lending take (`take(true)`) reuses: one object, and `data` copied into one scratch
   * buffer, its view kept while messages keep the same size.
   */
  #lent: { type: number; data: Uint8Array; handles: readonly HandleState[] } | undefined;
  #scratch = EMPTY;
  #scratchView = EMPTY;
  #scratchViewOf = EMPTY;

  /** `bytes` of the ring from `start` in the scratch buffer, as a view (see #lent). */
  #lendData(start: number, bytes: number): Uint8Array {
    let scratch = this.#scratch;
    if (scratch.byteLength < bytes) {
      scratch = new Uint8Array(2 ** Math.ceil(Math.log2(bytes)));
      this.#scratch = scratch;
    }
    const u8 = this.#u8;
    // TypedArray#set has a fixed cost (and a view to make) that dominates for a few bytes.
    if (bytes <= SMALL_COPY) for (let i = 0; i < bytes; i++) scratch[i] = u8[start + i] as number;
    else scratch.set(u8.subarray(start, start + bytes));
    if (this.#scratchView.byteLength !== bytes || this.#scratchViewOf !== scratch) {
      this.#scratchView = scratch.subarray(0, bytes);
      this.#scratchViewOf = scratch;
    }
    return this.#scratchView;
  }

  #take(hold: boolean, lend: boolean): RawMessage | undefined {
    if (this.#gone) return undefined;
    let i32 = this.#i32;
    if (this.#seenSentMsgs === this.#takenMsgs) {
      this.#seenSentMsgs = Atomics.load(i32, this.#in + P_MSGS);
      if (this.#seenSentMsgs === this.#takenMsgs) return undefined;
    }
    if (this.#inRing === 0) {
      this.#enterIn(Atomics.load(i32, this.#in + C_RING));
      i32 = this.#i32;
    }
    let at = this.#tail;
    for (;;) {
      const len = i32[(this.#inData + at) >> 2] as number;
      if (len === WRAP) {
        at = 0;
      } else if (len === MOVED) {
        at = 0;
        this.#nextInRing();
        i32 = this.#i32;
      } else {
        break;
      }
    }
    const word = (this.#inData + at) >> 2;
    const bytes = i32[word] as number;
    const type = (i32[word + 1] as number) >>> 0;
    const handleCount = i32[word + 2] as number;
    const block = i32[word + 3] as number;
    const start = this.#inData + at + RECORD_HEADER;
    const data = lend ? this.#lendData(start, bytes) : copyRange(this.#u8, start, bytes);
    at += recordSize(bytes);
    this.#tail = at === this.#inSize ? 0 : at;
    this.#takenMsgs = (this.#takenMsgs + 1) | 0;
    this.#takenBytes = (this.#takenBytes + bytes) | 0;
    if (hold) {
      this.#heldMsgs++;
      this.#heldBytes += bytes;
    }
    if (handleCount === 0) {
      this.#taken();
      if (!lend) return { type, data, handles: NO_HANDLES };
      this.#lent ??= { type, data, handles: NO_HANDLES };
      const lent = this.#lent;
      lent.type = type;
      lent.data = data;
      lent.handles = NO_HANDLES;
      return lent;
    }
    // The handles are adopted here before the record says it was taken, and that before the
    // producer may reuse the record: a reader standing in for this one if this thread dies
    // (see dropUnread) closes those of a record it finds with its block, none twice, and none
    // is left owned by nobody, which would leave its peer waiting for ever.
    try {
      return { type, data, handles: this.#readHandles(handleCount, block) };
    } finally {
      this.#i32[word + 3] = 0;
      this.#arena.free(block);
      this.#taken();
    }
  }

  /** The producer moved on to the next ring: follow it and free the one it left. */
  #nextInRing(): void {
    const old = this.#inRing;
    const next = this.#i32[(old + R_NEXT) >> 2] as number;
    this.#enterIn(next);
    this.#tail = 0;
    // Tail before ring: a producer that sees the new ring finds the tail that goes with it;
    // and the count with both, for a reader standing in for this one (see dropUnread).
    this.#i32[this.#in + C_TAKEN] = this.#takenMsgs;
    Atomics.store(this.#i32, this.#in + C_TAIL, 0);
    Atomics.store(this.#i32, this.#in + C_RING, next);
    this.#arena.free(old);
  }

  /**
   * Publishes progress to the producer once per batch rather than per message: every store
   * here takes the cache line from a producer that polls it, which halves throughput. The
   * producer only sees room a little later, so the bound stays exact; the end of what this
   * side knew was queued, every few messages, and the end of this task all publish.
   */
  #taken(): void {
    this.#unpublished++;
    if (this.#seenSentMsgs === this.#takenMsgs || this.#unpublished >= this.#publishEvery) {
      this.#publishTaken();
    } else if (!this.#publishQueued) {
      this.#publishQueued = true;
      this.#publishLater ??= () => {
        this.#publishQueued = false;
        if (!this.#gone) this.#publishTaken(true);
      };
      queueMicrotask(this.#publishLater);
    }
  }

  /**
   * Held messages (see `takeHeld`) are left out: the producer sees no room for them yet. A
   * producer that spins sees every publication; one that sleeps is woken only once half the
   * queue is free (by messages or by bytes), the queue is drained, or this task ends
   * (`wake`): a wake-up costs tens of
   * microseconds on both sides, and one per few messages made a sender at the default
   * capacity of 32 spend its time being woken for a handful of slots.
   */
  #publishTaken(wake = false): void {
    const unpublished = this.#unpublished;
    if (unpublished === 0 && !wake) return;
    this.#unpublished = 0;
    const i32 = this.#i32;
    // Ring space is free once read, held or not: the data was copied out.
    i32[this.#in + C_TAKEN] = this.#takenMsgs;
    Atomics.store(i32, this.#in + C_TAIL, this.#tail);
    i32[this.#in + C_BYTES] = (this.#takenBytes - this.#heldBytes) | 0;
    Atomics.store(i32, this.#in + C_MSGS, (this.#takenMsgs - this.#heldMsgs) | 0);
    if (
      wake ||
      this.#seenSentMsgs === this.#takenMsgs ||
      2 * ((this.#takenMsgs - this.#wokenAtMsgs) >>> 0) >= this.limits.capacity ||
      2 * ((this.#takenBytes - this.#wokenAtBytes) >>> 0) >= this.limits.capacityBytes
    ) {
      this.#wokenAtMsgs = this.#takenMsgs;
      this.#wokenAtBytes = this.#takenBytes;
      wakeIfSleeping(i32, this.#f64, this.#in + WRITER_WAKE, this.#in + WRITER_WOKEN_AT);
    }
  }

  armReadable(): void {
    this.#read ??= watch(
      this.#in + READER_WAKE,
      this.#in + READER_WOKEN_AT,
      this.#policy,
      () => Atomics.load(this.#i32, this.#in + P_MSGS) !== this.#takenMsgs,
    );
    this.#arm(this.#read);
  }

  armWritable(): void {
    this.#room ??= watch(
      this.#out + WRITER_WAKE,
      this.#out + WRITER_WOKEN_AT,
      this.#policy,
      () => Atomics.load(this.#i32, this.#out + C_MSGS) !== this.#writeMark,
    );
    this.#arm(this.#room);
  }

  deferSends(): void {
    this.#deferring = true;
  }

  flushSends(): void {
    this.#deferring = false;
    if (!this.#gone && Atomics.load(this.#i32, this.#out + P_MSGS) !== this.#sentMsgs) {
      this.#publishSent();
    }
  }

  disarmWritable(): void {
    const room = this.#room;
    if (room === undefined) return;
    room.armed = false;
    // Ends our own wait, which would keep this thread alive for nobody.
    if (room.sleeping) Atomics.notify(this.#i32, room.word);
  }

  isPeer(other: HandleState): boolean {
    const state = other instanceof LocalEndpoint ? (other.remote ?? other) : other;
    return (
      state instanceof SharedEndpoint &&
      state.#arena === this.#arena &&
      state.#slot === this.#slot &&
      state.#side !== this.#side
    );
  }

  close(): void {
    if (this.#gone) return;
    const i32 = this.#i32;
    const c = this.#c;
    Atomics.store(i32, c + CLOSED + this.#side, 1);
    // A peer that sleeps on either of its words re-checks `closed` when it wakes; one that
    // stores its flag after our store sees `closed` before it sleeps.
    notifyIfSleeping(i32, this.#out + READER_WAKE);
    notifyIfSleeping(i32, this.#in + WRITER_WAKE);
    for (let m = this.take(); m !== undefined; m = this.take()) {
      this.counters.discarded++;
      for (const handle of m.handles) handle.close();
    }
    const peer = sidesIn(this.#arena).get(this.#slot + 1 - this.#side);
    if (peer === undefined) {
      const other = 1 - this.#side;
      this.#arena.notifyThread(Atomics.load(i32, c + OWNER + other), this.#slot + other);
    }
    this.#leave();
    if (peer !== undefined) peer.#peerDied();
    release(this.#arena, this.#slot, this.#side);
  }

  /** Hands this side over for another thread; this object is dead afterwards. */
  moveOut(): Travel {
    const i32 = this.#i32;
    i32[this.#out + P_HEAD] = this.#head;
    i32[this.#out + P_RING] = this.#outRing;
    i32[this.#out + P_RING_START] = this.#ringStart;
    // Still this thread's until the message carrying it is sent (see `#sent`): if this thread
    // dies before, its parent closes the side, which nobody else could ever reach.
    Atomics.store(i32, this.#c + OWNER + this.#side, -this.#arena.thread);
    const generation = Atomics.add(i32, this.#c + GENERATION + this.#side, 1) + 1;
    this.#leave();
    return {
      arena: this.#arena,
      slot: this.#slot,
      side: this.#side,
      generation,
      pairId: this.#pairId,
      limits: this.limits,
      counters: travelling(this.counters),
    };
  }

  static #fromDescriptor(arena: Arena, w: number): SharedEndpoint {
    const i32 = arena.i32;
    const f64 = arena.f64;
    const f = (w + 10) >> 1;
    const limits = Object.freeze({
      capacity: i32[w + 6] as number,
      capacityBytes: i32[w + 7] as number,
      maxMessageBytes: i32[w + 8] as number,
      maxHandles: i32[w + 9] as number,
    });
    const counters = {
      sent: f64[f] as number,
      received: f64[f + 1] as number,
      dropped: f64[f + 2] as number,
      backpressured: f64[f + 3] as number,
      discarded: f64[f + 4] as number,
      sentBytes: f64[f + 5] as number,
      receivedBytes: f64[f + 6] as number,
    };
    return SharedEndpoint.#adopt(
      arenaOf(i32[w + 1] as number),
      i32[w + 2] as number,
      i32[w + 3] as number,
      i32[w + 4] as number,
      i32[w + 5] as number,
      limits,
      counters,
      resolveWakePolicy(),
    );
  }

  /**
   * Moves `handles` into a block of this pair's arena; the reader frees it. Local ends go
   * first, as only their move can fail (it needs shared memory for their pair): when one
   * does, those moved before are given back and the block freed.
   */
  #writeHandles(handles: readonly HandleState[]): number {
    const arena = this.#arena;
    const bytes = handles.length * HANDLE_BYTES + HAND_OVER_BYTES;
    const block = arena.claim(bytes);
    if (block === 0) throw exhausted(bytes, arena);
    this.#refresh(block + arena.sizeOf(block));
    const at = (i: number) => (block + i * HANDLE_BYTES) >> 2;
    const moved: [LocalEndpoint, Travel, EndpointEvents | undefined][] = [];
    const relays: [Endpoint, SharedEndpoint, Travel][] = [];
    for (let i = 0; i < handles.length; i++) {
      const state = handles[i] as HandleState;
      const local = localEnd(state);
      const foreign = local === undefined ? foreignEnd(state) : undefined;
      if (local === undefined && foreign === undefined) continue;
      try {
        if (local !== undefined) {
          const events = local.events;
          const t = travelOf(local);
          describeTravel(t, arena, at(i));
          moved.push([local, t, events]);
        } else {
          // The relay starts only once nothing can fail: until then the end is untouched.
          const [stay, t] = SharedEndpoint.#relayPair(foreign as Endpoint);
          describeTravel(t, arena, at(i));
          relays.push([foreign as Endpoint, stay, t]);
        }
      } catch (error) {
        for (const [end, t, before] of moved) end.resume(SharedEndpoint.#fromTravel(t), before);
        for (const [, stay, t] of relays) {
          SharedEndpoint.#fromTravel(t).close();
          stay.close();
        }
        arena.free(block);
        throw error;
      }
    }
    for (let i = 0; i < handles.length; i++) {
      const state = handles[i] as HandleState;
      if (localEnd(state) === undefined && foreignEnd(state) === undefined) {
        exportHandle(state, arena, at(i));
      }
    }
    for (const [foreign, stay] of relays) new Relay(foreign, stay);
    return block;
  }

  /**
   * A new pair for relaying `foreign` (see relay.ts): the side that stays here, and the side
   * that travels in its place, with its limits and counters.
   */
  static #relayPair(foreign: Endpoint): [SharedEndpoint, Travel] {
    const stay = SharedEndpoint.open(
      foreign.limits,
      [newCounters(), foreign.counters],
      resolveWakePolicy(),
    );
    return [stay, SharedEndpoint.otherTravelling(stay, foreign.counters)];
  }

  /** Relays `foreign` from this thread; returns the side that travels in its place. */
  static relay(foreign: Endpoint): Travel {
    const [stay, t] = SharedEndpoint.#relayPair(foreign);
    new Relay(foreign, stay);
    return t;
  }

  #readHandles(count: number, block: number): HandleState[] {
    const arena = this.#arena;
    this.#refresh(block + count * HANDLE_BYTES);
    const handles: HandleState[] = [];
    let error: unknown;
    for (let i = 0; i < count; i++) {
      try {
        handles.push(importHandle(arena, (block + i * HANDLE_BYTES) >> 2));
      } catch (err) {
        error ??= err;
      }
    }
    if (error !== undefined) {
      for (const handle of handles) handle.close();
      throw error;
    }
    return handles;
  }

  #fits(bytes: number): boolean {
    const queued = (this.#sentMsgs - this.#seenTakenMsgs) >>> 0;
    const queuedBytes = (this.#sentBytes - this.#seenTakenBytes) >>> 0;
    return queued < this.limits.capacity && queuedBytes + bytes <= this.limits.capacityBytes;
  }

  /**
   * Where a record of `size` bytes goes in the current ring, or -1 when it has no room. The
   * consumer's published tail counts only once it reads this ring; before, nothing of it is
   * free. The ring never fills completely, so head = tail means empty.
   */
  #placeFor(size: number): number {
    const i32 = this.#i32;
    const head = this.#head;
    const ringSize = this.#outSize;
    const tail =
      Atomics.load(i32, this.#out + C_RING) === this.#outRing
        ? Atomics.load(i32, this.#out + C_TAIL)
        : 0;
    if (tail <= head) {
      if (head + size < ringSize || (head + size === ringSize && tail !== 0)) return head;
      return size < tail ? 0 : -1;
    }
    return head + size < tail ? head : -1;
  }

  /**
   * Continues in a new ring that takes a record of `size` bytes: twice the old one (a message
   * that found no room), or a small one again (a large ring whose queue emptied).
   */
  #switchRing(size: number, grow: boolean): void {
    const wanted = grow
      ? Math.max(2 * this.#outSize, size + RECORD_HEADER)
      : Math.max(MIN_RING_BLOCK, 4 * size);
    const bytes = Math.max(
      Math.min(wanted, this.#maxRing),
      size + RECORD_HEADER,
      MIN_RING_BLOCK - 2 * RING_HEADER,
    );
    const ring = this.#arena.alloc(bytes + RING_HEADER, KIND_RING);
    if (ring === 0) throw exhausted(bytes + RING_HEADER, this.#arena);
    const old = this.#outRing;
    const oldData = this.#outData;
    this.#enterOut(ring);
    const i32 = this.#i32;
    i32[(ring + R_NEXT) >> 2] = 0;
    if (old === 0) {
      // The first ring: the consumer starts here.
      Atomics.store(i32, this.#out + C_RING, ring);
    } else {
      i32[(old + R_NEXT) >> 2] = ring;
      i32[(oldData + this.#head) >> 2] = MOVED;
    }
    this.#head = 0;
    this.#ringStart = this.#sentMsgs;
    this.#ringWrites = 0;
    this.#ringLargest = 0;
  }

  /**
   * Where a record of `size` bytes the limits admitted goes, in a larger ring when this one
   * has no room: taken before the handles move, so that no shared memory is missing after.
   */
  #place(size: number): number {
    if (this.#outRing === 0) this.#switchRing(size, true);
    else if (
      this.#outSize > SHRINK_ABOVE &&
      this.#ringWrites >= SHRINK_AFTER &&
      this.#seenTakenMsgs === this.#sentMsgs &&
      16 * Math.max(size, this.#ringLargest) < this.#outSize &&
      Atomics.load(this.#i32, this.#out + C_RING) === this.#outRing
    ) {
      this.#switchRing(size, false);
    }
    const at = this.#placeFor(size);
    if (at >= 0) return at;
    this.#switchRing(size, true);
    return 0;
  }

  /** Appends a record at `at`, from `#place`. */
  #write(
    at: number,
    size: number,
    type: number,
    data: Uint8Array,
    handleCount: number,
    block: number,
  ): void {
    const bytes = data.byteLength;
    this.#ringWrites++;
    if (size > this.#ringLargest) this.#ringLargest = size;
    const i32 = this.#i32;
    if (at === 0 && this.#head !== 0) i32[(this.#outData + this.#head) >> 2] = WRAP;
    const word = (this.#outData + at) >> 2;
    i32[word] = bytes;
    i32[word + 1] = type | 0;
    i32[word + 2] = handleCount;
    i32[word + 3] = block;
    if (bytes > 0) this.#u8.set(data, this.#outData + at + RECORD_HEADER);
    const end = at + size;
    this.#head = end === this.#outSize ? 0 : end;
    this.#sentMsgs = (this.#sentMsgs + 1) | 0;
    this.#sentBytes = (this.#sentBytes + bytes) | 0;
    if (!this.#deferring) this.#publishSent();
  }

  /**
   * One fenced store per message, or per batch (see `deferSends`): the byte count rides on the
   * message count's release; each store takes the cache line from a consumer that polls it.
   */
  #publishSent(): void {
    const i32 = this.#i32;
    i32[this.#out + P_BYTES] = this.#sentBytes;
    Atomics.store(i32, this.#out + P_MSGS, this.#sentMsgs);
    if ((this.#sentMsgs - this.#seenTakenMsgs) >>> 0 > this.#hwm) {
      this.#seenTakenMsgs = Atomics.load(i32, this.#out + C_MSGS);
      const queued = (this.#sentMsgs - this.#seenTakenMsgs) >>> 0;
      if (queued > this.#hwm) {
        this.#hwm = queued;
        Atomics.store(i32, this.#out + HWM, queued);
      }
    }
    wakeIfSleeping(i32, this.#f64, this.#out + READER_WAKE, this.#out + READER_WOKEN_AT);
  }

  /**
   * Sleeps on a wake word until the other side notifies. The word is set before `ready()` is
   * checked again, and the other side sets its progress before it reads the word: one of the
   * two always sees the other, so no wake-up is lost.
   */
  #sleep(watch: Watch): void {
    const i32 = this.#i32;
    const word = watch.word;
    Atomics.store(i32, word, 1);
    const woke = () => {
      watch.sleeping = false;
      if (this.#gone) return;
      Atomics.store(i32, word, 0);
      this.#dispatch();
    };
    if (watch.ready() || this.peerClosed) {
      woke();
      return;
    }
    const result = waitAsync(i32, word, 1);
    if (!result.async) {
      woke();
      return;
    }
    const sleptAt = epochNow();
    holdThread();
    result.value.then(() => {
      releaseThread();
      // How long until the other side had work for us, not how long our wake-up took: that
      // says whether spinning would have been enough.
      const notifiedAt = this.#f64[watch.wokenAt >> 1] as number;
      watch.spinner.slept(((notifiedAt > sleptAt ? notifiedAt : epochNow()) - sleptAt) * 1000);
      woke();
    });
  }

  /** Spins, then sleeps, until `watch` is ready or the peer is gone; then dispatches. */
  #arm(watch: Watch): void {
    if (this.#gone) return;
    watch.armed = true;
    if (watch.ready() || this.peerClosed || watch.spinner.spin(watch.ready)) {
      this.#dispatch();
    } else if (!watch.sleeping) {
      watch.sleeping = true;
      this.#sleep(watch);
    }
  }

  /** Tells the owning Channel what changed, and re-sleeps for what it still waits for. */
  #dispatch(): void {
    if (this.#gone) return;
    const read = this.#read;
    const write = this.#room;
    if (read?.armed && read.ready()) {
      read.armed = false;
      this.events?.readable();
    }
    if (write?.armed && write.ready()) {
      write.armed = false;
      this.#writeMark = Atomics.load(this.#i32, this.#out + C_MSGS);
      this.events?.writable();
    }
    if (this.peerClosed) {
      if (!this.#peerReported) {
        this.#peerReported = true;
        if (read !== undefined) read.armed = false;
        if (write !== undefined) write.armed = false;
        this.events?.peerClosed();
      }
      return;
    }
    if (read?.armed && !read.sleeping) this.#arm(read);
    if (write?.armed && !write.sleeping) this.#arm(write);
  }

  /** The peer closed (its flag is set) or its thread died (its parent set the flag). */
  #peerDied(): void {
    if (this.#gone) return;
    this.#wakeOwn();
    this.#dispatch();
  }

  /** Reports a peer that closed in another thread; see `onThreadWake`. */
  static poll(side: SharedEndpoint): void {
    if (!side.#gone && !side.#peerReported && side.peerClosed) side.#peerDied();
  }

  /** Adopts back, here, a side that `moveOut` or `travelOf` made ready to travel. */
  static #fromTravel(t: Travel): SharedEndpoint {
    return SharedEndpoint.#adopt(
      t.arena,
      t.slot,
      t.side,
      t.generation,
      t.pairId,
      t.limits,
      t.counters,
      resolveWakePolicy(),
    );
  }

  static fromDescriptor(arena: Arena, w: number): SharedEndpoint {
    return SharedEndpoint.#fromDescriptor(arena, w);
  }

  #leave(): void {
    this.#publishTaken(true);
    this.#gone = true;
    sidesIn(this.#arena).delete(this.#slot + this.#side);
    this.events = undefined;
    // Our own pending waits would otherwise hold the thread, or steal the next owner's wake-ups.
    this.#wakeOwn();
  }

  /** Ends this side's own sleeps (a notify is a system call; skip it when nothing sleeps). */
  #wakeOwn(): void {
    if (this.#read?.sleeping) Atomics.notify(this.#i32, this.#read.word);
    if (this.#room?.sleeping) Atomics.notify(this.#i32, this.#room.word);
  }
}

onThreadWake((arena, keys) => {
  const sides = sidesHere.get(arena);
  if (sides === undefined) return;
  if (keys === null) {
    for (const side of sides.values()) SharedEndpoint.poll(side);
    return;
  }
  for (const key of keys) {
    const side = (key & PIPE_KEY) === 0 ? sides.get(key) : undefined;
    if (side !== undefined) SharedEndpoint.poll(side);
  }
});

onThreadsDied((arena, dead) => {
  // Before the slots are closed: the slot a send cut short was writing into is still there
  // (the dead thread held the side that sends on it), and says whether the message went out.
  for (const [block, control] of arena.handedOverBy(dead)) {
    const end = (block + arena.sizeOf(block)) >> 2;
    const count = arena.i32[end - 2] as number;
    const seq = arena.i32[end - 1] as number;
    // Published: the handles are its reader's, or a reader's standing in for it (see
    // dropUnread). Marked so, it is never looked at again, when its slot may be gone.
    if (((Atomics.load(arena.i32, control + P_MSGS) - seq) | 0) > 0) {
      arena.sent(block, control);
      continue;
    }
    // Read, freed and claimed again by a live thread while this looked.
    if (!dead.has(arena.claimer(block))) continue;
    for (let i = 0; i < count; i++) dropHandle(arena, (block + i * HANDLE_BYTES) >> 2);
    arena.free(block);
  }
  for (const slot of arena.blocks(KIND_SLOT)) {
    for (let side = 0; side < 2; side++) {
      const owner = (slot >> 2) + OWNER + side;
      // Owned by a dead thread, or moved out by one in a message it never sent.
      const entry = Atomics.load(arena.i32, owner);
      if (!dead.has(entry) && !dead.has(-entry)) continue;
      // The entry is freed after this scan: nobody may notify it then.
      Atomics.store(arena.i32, owner, 0);
      closeSide(arena, slot, side);
    }
  }
});

function checkToken(token: EndpointToken): void {
  const t = token as Partial<EndpointToken> | null;
  if (
    typeof t !== 'object' ||
    t === null ||
    t.version !== TOKEN_VERSION ||
    !(t.memory instanceof SharedArrayBuffer) ||
    (t.side !== 0 && t.side !== 1) ||
    !Number.isInteger(t.generation) ||
    !Number.isInteger(t.slot) ||
    !Number.isInteger(t.arena) ||
    !Number.isInteger(t.pairId) ||
    typeof t.limits !== 'object' ||
    typeof t.counters !== 'object'
  ) {
    throw new IpcError(
      'INVALID_ARGUMENT',
      `expected a token from exportEndpoint() (${TOKEN_VERSION}), got ${describe(token)}`,
    );
  }
  const slot = t.slot as number;
  if (slot <= 0 || slot % 16 !== 0 || slot + SLOT_BYTES > t.memory.byteLength) {
    throw new IpcError('INVALID_ARGUMENT', `an endpoint token names no slot at ${slot}`);
  }
}

function describe(value: unknown): string {
  if (typeof value !== 'object' || value === null) return String(value);
  return `an object with keys ${Object.keys(value).join(', ') || '(none)'}`;
}

/** Throws HANDLE_NOT_MOVABLE for a handle this transport cannot carry to another thread. */
export function checkMovable(state: HandleState): void {
  const target = state instanceof LocalEndpoint ? (state.remote ?? state) : state;
  if (target instanceof SharedEndpoint) return;
  if (target instanceof PipeEndState) {
    checkPipeMovable(target);
    return;
  }
  if (target instanceof LocalEndpoint || foreignEnd(target) !== undefined) {
    checkRingLimits((target as Endpoint).limits);
    return;
  }
  throw new IpcError(
    'HANDLE_NOT_MOVABLE',
    `a handle of kind '${state.kind}' on this transport cannot move to another thread`,
  );
}

/** Writes a handle as a descriptor at int32 index `w` of `arena`; the state is dead after. */
function exportHandle(state: HandleState, arena: Arena, w: number): void {
  if (state instanceof PipeEndState) {
    arena.i32[w] = HANDLE_PIPE;
    writePipeHandle(state, arena, w + 1);
    return;
  }
  describeTravel(travelOf(state), arena, w);
}

/**
 * The message whose handle descriptors are at `block` was sent: the sides in it now belong to
 * its reader, which may have adopted them already.
 */
function travelled(arena: Arena, block: number, count: number): void {
  const i32 = arena.i32;
  for (let i = 0; i < count; i++) {
    const w = (block + i * HANDLE_BYTES) >> 2;
    if (i32[w] !== HANDLE_CHANNEL) continue;
    unclaim(arenaOf(i32[w + 1] as number), i32[w + 2] as number, i32[w + 3] as number);
  }
}

/** Clears the mark of this thread that `moveOut` left on a side, unless its adopter took it. */
function unclaim(arena: Arena, slot: number, side: number): void {
  arena.cover(slot + SLOT_BYTES);
  Atomics.compareExchange(arena.i32, (slot >> 2) + OWNER + side, -arena.thread, 0);
}

/** Writes a travelling side as a handle descriptor at int32 index `w` of `arena`. */
function describeTravel(t: Travel, arena: Arena, w: number): void {
  const i32 = arena.i32;
  i32[w] = HANDLE_CHANNEL;
  i32[w + 1] = t.arena.id;
  i32[w + 2] = t.slot;
  i32[w + 3] = t.side;
  i32[w + 4] = t.generation;
  i32[w + 5] = t.pairId;
  i32[w + 6] = t.limits.capacity;
  i32[w + 7] = t.limits.capacityBytes;
  i32[w + 8] = t.limits.maxMessageBytes;
  i32[w + 9] = t.limits.maxHandles;
  const f = (w + 10) >> 1;
  const f64 = arena.f64;
  f64[f] = t.counters.sent;
  f64[f + 1] = t.counters.received;
  f64[f + 2] = t.counters.dropped;
  f64[f + 3] = t.counters.backpressured;
  f64[f + 4] = t.counters.discarded;
  f64[f + 5] = t.counters.sentBytes;
  f64[f + 6] = t.counters.receivedBytes;
}

/** The counters a side takes along: its high-water mark stays in the ring it leaves. */
function travelling(
  counters: Omit<EndpointCounters, 'highWaterMark'>,
): Omit<EndpointCounters, 'highWaterMark'> {
  const { sent, received, sentBytes, receivedBytes, dropped, backpressured, discarded } = counters;
  return { sent, received, sentBytes, receivedBytes, dropped, backpressured, discarded };
}

function importHandle(arena: Arena, w: number): HandleState {
  const kind = arena.i32[w];
  if (kind === HANDLE_PIPE) return readPipeHandle(arena, w + 1);
  if (kind === HANDLE_CHANNEL) return SharedEndpoint.fromDescriptor(arena, w);
  throw new IpcError('INVALID_MESSAGE', `a message carries a handle of unknown kind ${kind}`);
}

/** Turns a channel endpoint that {@link checkMovable} accepted into a token; it is dead after. */
export function exportEndpointState(state: HandleState): EndpointToken {
  const t = travelOf(state);
  // The token's port watches the importer's thread from here on.
  unclaim(t.arena, t.slot, t.side);
  const { port1, port2 } = new MessageChannel();
  const token: EndpointToken = {
    version: TOKEN_VERSION,
    memory: t.arena.buffer,
    arena: t.arena.id,
    slot: t.slot,
    side: t.side,
    generation: t.generation,
    pairId: t.pairId,
    port: port2,
    transfer: [port2],
    limits: t.limits,
    counters: t.counters,
  };
  // The port closes when the importer takes the side (then the claim below fails) or its thread
  // ends first: the side is claimed here and closed, so its peer sees PEER_CLOSED, not silence.
  port1.once('close', () => {
    try {
      SharedEndpoint.fromToken(token).close();
    } catch (error) {
      if (!isIpcError(error, 'INVALID_ARGUMENT')) throw error;
    }
  });
  port1.unref();
  return token;
}

/** The local end behind a handle, whose move needs shared memory; undefined for others. */
function localEnd(state: HandleState): LocalEndpoint | undefined {
  return state instanceof LocalEndpoint && state.remote === undefined ? state : undefined;
}

/**
 * A channel endpoint of another transport (one that arrived over a socket or NATS): it cannot
 * enter shared memory itself, so it moves through a relay, which needs shared memory too.
 */
function foreignEnd(state: HandleState): Endpoint | undefined {
  return state.kind === 'channel' &&
    !(state instanceof SharedEndpoint) &&
    !(state instanceof LocalEndpoint)
    ? (state as Endpoint)
    : undefined;
}

/**
 * The side that travels for `state`. A local end whose peer stays becomes side 1 of a new
 * shared pair, the peer forwarding to side 0; the messages queued on both are replayed into
 * the rings. Side 1 is built here only when it has messages to replay. All or nothing: when
 * shared memory runs out on the way, the messages replayed are taken back (their handles
 * with them) and the local pair is as it was.
 */
function travelOf(state: HandleState): Travel {
  if (state instanceof SharedEndpoint) return state.moveOut();
  const foreign = foreignEnd(state);
  if (foreign !== undefined) return SharedEndpoint.relay(foreign);
  const local = state as LocalEndpoint;
  const remote = local.remote;
  if (remote !== undefined) {
    local.takeRemote();
    return travelOf(remote);
  }
  let travel: Travel | undefined;
  local.detach((own, peerSide) => {
    const stay = SharedEndpoint.open(
      peerSide?.limits ?? own.limits,
      [peerSide?.counters ?? newCounters(), own.counters],
      resolveWakePolicy(),
    );
    let traveller: SharedEndpoint | undefined;
    let toTraveller = 0;
    let toStay = 0;
    try {
      for (const m of own.queued) {
        stay.trySend(m.type, m.data, m.handles);
        toTraveller++;
      }
      if (peerSide !== undefined && peerSide.queued.length > 0) {
        traveller = SharedEndpoint.other(stay, own.counters);
        for (const m of peerSide.queued) {
          traveller.trySend(m.type, m.data, m.handles);
          toStay++;
        }
      }
    } catch (error) {
      traveller ??= SharedEndpoint.other(stay, own.counters);
      takeBack(traveller, own.queued, toTraveller);
      if (peerSide !== undefined) takeBack(stay, peerSide.queued, toStay);
      traveller.close();
      stay.close();
      throw error;
    }
    travel = traveller?.moveOut() ?? SharedEndpoint.otherTravelling(stay, own.counters);
    if (peerSide !== undefined) return stay;
    // The peer is gone already: the traveller still needs the ring to drain what it holds.
    stay.close();
    return undefined;
  });
  return travel as Travel;
}

/** Reads back the first `count` of `messages` that were replayed to `from`, in their place. */
function takeBack(from: SharedEndpoint, messages: RawMessage[], count: number): void {
  for (let i = 0; i < count; i++) messages[i] = from.take() as RawMessage;
}
