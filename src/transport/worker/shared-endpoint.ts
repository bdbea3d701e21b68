/**
 * One side of a channel pair whose two sides may live in different threads: messages go
 * through a SharedArrayBuffer ring per direction, and only handles (which carry ports) go
 * through the pair's data port. A second port, which never carries anything, tells a side
 * when its peer's thread died: a port reports its peer's close only once every message queued
 * before it was read, so a data port with unread handles would hide a death.
 */
import { randomFillSync } from 'node:crypto';
import { MessageChannel, type MessagePort, receiveMessageOnPort } from 'node:worker_threads';
import { copyRange } from '../../channel/copy.js';
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
import { IpcError } from '../../errors.js';
import { PipeEndState } from '../../pipe/pipe.js';
import {
  isPipeToken,
  type PipeToken,
  pipeStateFromToken,
  pipeStateToToken,
} from '../../pipe/thread.js';
import {
  C_BYTES,
  C_MSGS,
  C_TAIL,
  CLOSED,
  checkRingLimits,
  GENERATION,
  HWM,
  P_BYTES,
  P_HEAD,
  P_MSGS,
  PAIR_ID,
  pairBytes,
  READER_WAKE,
  READER_WOKEN_AT,
  RECORD_HEADER,
  recordSize,
  ringBytes,
  ringControl,
  ringData,
  WRAP,
  WRITER_WAKE,
  WRITER_WOKEN_AT,
} from './layout.js';
import {
  holdThread,
  type ResolvedWakePolicy,
  releaseThread,
  resolveWakePolicy,
  Spinner,
  type WakePolicy,
  waitAsync,
} from './wake.js';

const NO_HANDLES: HandleState[] = [];
const TOKEN_VERSION = 'ftl-ipc/channel@1';

/**
 * A channel endpoint on its way to another thread: structured-cloneable once the ports in
 * `transfer` are in the transfer list. Import it exactly once.
 */
export interface EndpointToken {
  readonly version: typeof TOKEN_VERSION;
  readonly memory: SharedArrayBuffer;
  readonly side: number;
  readonly generation: number;
  readonly port: MessagePort;
  readonly life: MessagePort;
  /** What `postMessage` or `new Worker` must transfer with the token. */
  readonly transfer: MessagePort[];
  readonly limits: ChannelLimits;
  readonly counters: Omit<EndpointCounters, 'highWaterMark'>;
}

type Transferable = MessagePort;
/** A handle on its way: a channel endpoint, or a data pipe end (whose module moves it). */
type HandleToken = EndpointToken | PipeToken;

function importState(token: HandleToken): HandleState {
  return isPipeToken(token) ? pipeStateFromToken(token) : SharedEndpoint.fromToken(token);
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

/** A clock that agrees across threads (performance.now() starts anew in each worker). */
function epochNow(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * The sides living in this thread, by pair. A close wakes a peer in the same thread directly:
 * its port's 'close' event would come later, and does not keep the event loop alive.
 */
const sidesHere = new Map<number, (WeakRef<SharedEndpoint> | undefined)[]>();

export class SharedEndpoint implements Endpoint {
  readonly kind = 'channel';
  events: EndpointEvents | undefined;
  readonly limits: ChannelLimits;
  readonly counters: EndpointCounters;
  readonly #memory: SharedArrayBuffer;
  readonly #pairId: number;
  readonly #i32: Int32Array;
  readonly #f64: Float64Array;
  readonly #u8: Uint8Array;
  readonly #side: number;
  readonly #port: MessagePort;
  readonly #life: MessagePort;
  readonly #ringSize: number;
  /** Control index and data byte offset of the ring this side writes, and of the one it reads. */
  readonly #out: number;
  readonly #outData: number;
  readonly #in: number;
  readonly #inData: number;
  /** Producer cursor, and what it last saw of its consumer's progress. */
  #head: number;
  #sentMsgs: number;
  #sentBytes: number;
  #seenTakenMsgs: number;
  #seenTakenBytes: number;
  #hwm: number;
  /** Consumer cursor, and what it last saw of its producer's progress. */
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
  readonly #publishLater = () => {
    this.#publishQueued = false;
    if (!this.#gone) this.#publishTaken();
  };
  /** Consumer progress when the last send found no room: a change means room may be back. */
  #writeMark = 0;
  #peerReported = false;
  /** Closed here or moved to another thread: nothing in this object may touch the rings. */
  #gone = false;
  /** Set once this thread saw a port close: a closed port can no longer be transferred. */
  #portClosed = false;
  #lifeClosed = false;
  readonly #onPortClose = () => {
    this.#portClosed = true;
    this.#peerDied();
  };
  readonly #onLifeClose = () => {
    this.#lifeClosed = true;
    this.#peerDied();
  };
  /** Waiting for a message to read, and for room (the consumer's progress) to send. */
  readonly #read: Watch;
  readonly #room: Watch;

  private constructor(
    memory: SharedArrayBuffer,
    side: number,
    port: MessagePort,
    life: MessagePort,
    limits: ChannelLimits,
    counters: Omit<EndpointCounters, 'highWaterMark'>,
    policy: ResolvedWakePolicy,
  ) {
    this.#memory = memory;
    this.#i32 = new Int32Array(memory);
    this.#f64 = new Float64Array(memory);
    this.#u8 = new Uint8Array(memory);
    this.#pairId = (this.#i32[PAIR_ID] as number) * 2 ** 32 + (this.#i32[PAIR_ID + 1] as number);
    this.#side = side;
    this.#port = port;
    this.#life = life;
    this.limits = limits;
    this.#ringSize = ringBytes(limits);
    this.#publishEvery = Math.min(64, Math.ceil(limits.capacity / 4));
    this.#out = ringControl(side);
    this.#outData = ringData(side, this.#ringSize);
    this.#in = ringControl(1 - side);
    this.#inData = ringData(1 - side, this.#ringSize);
    const i32 = this.#i32;
    this.#head = i32[this.#out + P_HEAD] as number;
    this.#sentMsgs = i32[this.#out + P_MSGS] as number;
    this.#sentBytes = i32[this.#out + P_BYTES] as number;
    this.#hwm = i32[this.#out + HWM] as number;
    this.#seenTakenMsgs = Atomics.load(i32, this.#out + C_MSGS);
    this.#seenTakenBytes = Atomics.load(i32, this.#out + C_BYTES);
    this.#tail = i32[this.#in + C_TAIL] as number;
    this.#takenMsgs = i32[this.#in + C_MSGS] as number;
    this.#takenBytes = i32[this.#in + C_BYTES] as number;
    this.#seenSentMsgs = Atomics.load(i32, this.#in + P_MSGS);
    this.#read = watch(
      this.#in + READER_WAKE,
      this.#in + READER_WOKEN_AT,
      policy,
      () => Atomics.load(i32, this.#in + P_MSGS) !== this.#takenMsgs,
    );
    this.#room = watch(
      this.#out + WRITER_WAKE,
      this.#out + WRITER_WOKEN_AT,
      policy,
      () => Atomics.load(i32, this.#out + C_MSGS) !== this.#writeMark,
    );
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
    // The port's 'close' event fires once and only for listeners present then.
    this.#lifeClosed = stopGuarding(life);
    if (this.#lifeClosed) Atomics.store(this.#i32, CLOSED + 1 - side, 1);
    life.on('close', this.#onLifeClose);
    life.unref();
    port.on('close', this.#onPortClose);
    port.unref();
    const sides = sidesHere.get(this.#pairId) ?? [];
    sides[side] = new WeakRef(this);
    sidesHere.set(this.#pairId, sides);
    // A peer that closed before this side arrived is seen by the adopting Channel itself.
    this.#peerReported = this.peerClosed;
  }

  /** Creates both sides of a new pair in this thread. */
  static pair(
    limits: ChannelLimits,
    counters: [EndpointCounters, EndpointCounters],
    policy: ResolvedWakePolicy,
  ): [SharedEndpoint, SharedEndpoint] {
    checkRingLimits(limits);
    const memory = new SharedArrayBuffer(pairBytes(limits));
    const i32 = new Int32Array(memory);
    randomFillSync(i32.subarray(PAIR_ID, PAIR_ID + 2));
    // Each side's receive queue keeps its high-water mark across the move into shared memory.
    i32[ringControl(1) + HWM] = counters[0].highWaterMark;
    i32[ringControl(0) + HWM] = counters[1].highWaterMark;
    const data = new MessageChannel();
    const life = new MessageChannel();
    return [
      new SharedEndpoint(memory, 0, data.port1, life.port1, limits, counters[0], policy),
      new SharedEndpoint(memory, 1, data.port2, life.port2, limits, counters[1], policy),
    ];
  }

  /** Adopts a token in this thread; throws INVALID_ARGUMENT for anything else. */
  static fromToken(token: EndpointToken, policy?: WakePolicy): SharedEndpoint {
    checkToken(token);
    const resolved = resolveWakePolicy(policy);
    const i32 = new Int32Array(token.memory);
    const generation = GENERATION + token.side;
    if (
      Atomics.compareExchange(i32, generation, token.generation, token.generation + 1) !==
      token.generation
    ) {
      throw new IpcError(
        'INVALID_ARGUMENT',
        `this endpoint token (side ${token.side}, generation ${token.generation}) was already imported`,
      );
    }
    const limits = Object.freeze({ ...token.limits });
    return new SharedEndpoint(
      token.memory,
      token.side,
      token.port,
      token.life,
      limits,
      token.counters,
      resolved,
    );
  }

  get peerClosed(): boolean {
    return Atomics.load(this.#i32, CLOSED + 1 - this.#side) === 1;
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

  trySend(type: number, data: Uint8Array, handles: readonly HandleState[]): SendStatus {
    for (const handle of handles) checkMovable(handle);
    const bytes = data.byteLength;
    const status = this.canSend(bytes);
    if (status !== SEND_OK) return status;
    if (handles.length > 0) {
      // Posted before the record is published, so the reader finds the tokens when it needs them.
      const transfer: Transferable[] = [];
      const tokens = handles.map((h) => exportState(h, transfer));
      this.#port.postMessage(tokens, transfer);
    }
    this.#write(type, data, handles.length);
    return SEND_OK;
  }

  take(): RawMessage | undefined {
    return this.#take(false);
  }

  /** Takes a message that stays counted against the queue (unpublished) until `release`. */
  takeHeld(): RawMessage | undefined {
    return this.#take(true);
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

  #take(hold: boolean): RawMessage | undefined {
    if (this.#gone) return undefined;
    const i32 = this.#i32;
    if (this.#seenSentMsgs === this.#takenMsgs) {
      this.#seenSentMsgs = Atomics.load(i32, this.#in + P_MSGS);
      if (this.#seenSentMsgs === this.#takenMsgs) return undefined;
    }
    let at = this.#tail;
    if (i32[(this.#inData + at) >> 2] === WRAP) at = 0;
    const word = (this.#inData + at) >> 2;
    const bytes = i32[word] as number;
    const type = (i32[word + 1] as number) >>> 0;
    const handleCount = i32[word + 2] as number;
    const start = this.#inData + at + RECORD_HEADER;
    const data = copyRange(this.#u8, start, bytes);
    at += recordSize(bytes);
    this.#tail = at === this.#ringSize ? 0 : at;
    this.#takenMsgs = (this.#takenMsgs + 1) | 0;
    this.#takenBytes = (this.#takenBytes + bytes) | 0;
    if (hold) {
      this.#heldMsgs++;
      this.#heldBytes += bytes;
    }
    this.#taken();
    const handles = handleCount === 0 ? NO_HANDLES : this.#receiveHandles(handleCount);
    return { type, data, handles };
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
      queueMicrotask(this.#publishLater);
    }
  }

  /** Held messages (see `takeHeld`) are left out: the producer sees no room for them yet. */
  #publishTaken(force = false): void {
    if (this.#unpublished === 0 && !force) return;
    this.#unpublished = 0;
    const i32 = this.#i32;
    i32[this.#in + C_BYTES] = (this.#takenBytes - this.#heldBytes) | 0;
    Atomics.store(i32, this.#in + C_MSGS, (this.#takenMsgs - this.#heldMsgs) | 0);
    wakeIfSleeping(i32, this.#f64, this.#in + WRITER_WAKE, this.#in + WRITER_WOKEN_AT);
  }

  armReadable(): void {
    this.#arm(this.#read);
  }

  armWritable(): void {
    this.#arm(this.#room);
  }

  disarmWritable(): void {
    this.#room.armed = false;
    // Ends our own wait, which would keep this thread alive for nobody.
    if (this.#room.sleeping) Atomics.notify(this.#i32, this.#room.word);
  }

  isPeer(other: HandleState): boolean {
    const state = other instanceof LocalEndpoint ? (other.remote ?? other) : other;
    return (
      state instanceof SharedEndpoint &&
      state.#pairId === this.#pairId &&
      state.#side !== this.#side
    );
  }

  close(): void {
    if (this.#gone) return;
    const i32 = this.#i32;
    Atomics.store(i32, CLOSED + this.#side, 1);
    // The peer may sleep on either of its words; it re-checks `closed` when it wakes.
    Atomics.notify(i32, this.#out + READER_WAKE);
    Atomics.notify(i32, this.#in + WRITER_WAKE);
    for (let m = this.take(); m !== undefined; m = this.take()) {
      this.counters.discarded++;
      for (const handle of m.handles) handle.close();
    }
    const peer = sidesHere.get(this.#pairId)?.[1 - this.#side]?.deref();
    this.#leave();
    this.#port.close();
    this.#life.close();
    if (peer !== undefined) peer.#peerDied();
  }

  /** Hands this side to a token for another thread; this object is dead afterwards. */
  moveOut(transfer: Transferable[]): EndpointToken {
    const i32 = this.#i32;
    i32[this.#out + P_HEAD] = this.#head;
    i32[this.#in + C_TAIL] = this.#tail;
    const generation = Atomics.add(i32, GENERATION + this.#side, 1) + 1;
    this.#leave();
    // A port closed by its peer's death cannot travel; the peer is gone, so a new one will do
    // (a closed data port has nothing queued: its close came after everything sent).
    const port = this.#portClosed ? new MessageChannel().port1 : this.#port;
    const life = this.#lifeClosed ? new MessageChannel().port1 : this.#life;
    guard(life);
    transfer.push(port, life);
    const { sent, received, dropped, backpressured, discarded } = this.counters;
    return {
      version: TOKEN_VERSION,
      memory: this.#memory,
      side: this.#side,
      generation,
      port,
      life,
      transfer: [port, life],
      limits: this.limits,
      counters: { sent, received, dropped, backpressured, discarded },
    };
  }

  #fits(bytes: number): boolean {
    const queued = (this.#sentMsgs - this.#seenTakenMsgs) >>> 0;
    const queuedBytes = (this.#sentBytes - this.#seenTakenBytes) >>> 0;
    return queued < this.limits.capacity && queuedBytes + bytes <= this.limits.capacityBytes;
  }

  /** Appends a record the limits admitted: layout.ts sizes the ring so it always fits. */
  #write(type: number, data: Uint8Array, handleCount: number): void {
    const i32 = this.#i32;
    const bytes = data.byteLength;
    const size = recordSize(bytes);
    let at = this.#head;
    if (at + size > this.#ringSize) {
      i32[(this.#outData + at) >> 2] = WRAP;
      at = 0;
    }
    const word = (this.#outData + at) >> 2;
    i32[word] = bytes;
    i32[word + 1] = type | 0;
    i32[word + 2] = handleCount;
    if (bytes > 0) this.#u8.set(data, this.#outData + at + RECORD_HEADER);
    at += size;
    this.#head = at === this.#ringSize ? 0 : at;
    this.#sentMsgs = (this.#sentMsgs + 1) | 0;
    this.#sentBytes = (this.#sentBytes + bytes) | 0;
    // One fenced store per message: the byte count rides on the message count's release.
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

  #receiveHandles(count: number): HandleState[] {
    const received = receiveMessageOnPort(this.#port);
    const tokens = received?.message as HandleToken[] | undefined;
    if (!Array.isArray(tokens) || tokens.length !== count) {
      throw new IpcError(
        'INVALID_MESSAGE',
        `a message announced ${count} handles but ${tokens?.length ?? 0} arrived with it`,
      );
    }
    return tokens.map(importState);
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
    if (read.armed && read.ready()) {
      read.armed = false;
      this.events?.readable();
    }
    if (write.armed && write.ready()) {
      write.armed = false;
      this.#writeMark = Atomics.load(this.#i32, this.#out + C_MSGS);
      this.events?.writable();
    }
    if (this.peerClosed) {
      if (!this.#peerReported) {
        this.#peerReported = true;
        read.armed = false;
        write.armed = false;
        this.events?.peerClosed();
      }
      return;
    }
    if (read.armed && !read.sleeping) this.#arm(read);
    if (write.armed && !write.sleeping) this.#arm(write);
  }

  /** The peer's ports closed: it closed (the flag is already set) or its thread died. */
  #peerDied(): void {
    if (this.#gone) return;
    Atomics.store(this.#i32, CLOSED + 1 - this.#side, 1);
    // Wake this side's own sleepers so they stop holding the thread.
    Atomics.notify(this.#i32, this.#in + READER_WAKE);
    Atomics.notify(this.#i32, this.#out + WRITER_WAKE);
    this.#dispatch();
  }

  #leave(): void {
    this.#publishTaken();
    this.#gone = true;
    const sides = sidesHere.get(this.#pairId);
    if (sides !== undefined) {
      sides[this.#side] = undefined;
      if (sides[1 - this.#side] === undefined) sidesHere.delete(this.#pairId);
    }
    this.events = undefined;
    this.#port.off('close', this.#onPortClose);
    this.#life.off('close', this.#onLifeClose);
    // Our own pending waits would otherwise hold the thread, or steal the next owner's wake-ups.
    Atomics.notify(this.#i32, this.#in + READER_WAKE);
    Atomics.notify(this.#i32, this.#out + WRITER_WAKE);
  }
}

/**
 * Ports of tokens not yet imported, and whether their peer closed meanwhile: the 'close' event
 * would otherwise be lost, and an endpoint imported in this thread would wait forever. When
 * the token is transferred instead, this port object dies and the mark with it.
 */
const guarded = new WeakMap<MessagePort, { closed: boolean; listener: () => void }>();

function guard(port: MessagePort): void {
  const entry = {
    closed: false,
    listener: () => {
      entry.closed = true;
    },
  };
  guarded.set(port, entry);
  port.on('close', entry.listener);
  port.unref();
}

/** Ends the guard of a token's port; says whether the port closed while it was guarded. */
function stopGuarding(port: MessagePort): boolean {
  const entry = guarded.get(port);
  if (entry === undefined) return false;
  guarded.delete(port);
  port.off('close', entry.listener);
  return entry.closed;
}

function checkToken(token: EndpointToken): void {
  const t = token as Partial<EndpointToken> | null;
  if (
    typeof t !== 'object' ||
    t === null ||
    t.version !== TOKEN_VERSION ||
    !(t.memory instanceof SharedArrayBuffer) ||
    (t.side !== 0 && t.side !== 1) ||
    !Number.isInteger(t.generation) ||
    typeof t.port?.postMessage !== 'function' ||
    typeof t.life?.postMessage !== 'function' ||
    typeof t.limits !== 'object' ||
    typeof t.counters !== 'object'
  ) {
    throw new IpcError(
      'INVALID_ARGUMENT',
      `expected a token from exportEndpoint() (${TOKEN_VERSION}), got ${describe(token)}`,
    );
  }
}

function describe(value: unknown): string {
  if (typeof value !== 'object' || value === null) return String(value);
  return `an object with keys ${Object.keys(value).join(', ') || '(none)'}`;
}

/** Throws HANDLE_NOT_MOVABLE for a handle this transport cannot carry to another thread. */
export function checkMovable(state: HandleState): void {
  const target = state instanceof LocalEndpoint ? (state.remote ?? state) : state;
  if (target instanceof SharedEndpoint || target instanceof PipeEndState) return;
  if (target instanceof LocalEndpoint) {
    checkRingLimits(target.limits);
    return;
  }
  throw new IpcError(
    'HANDLE_NOT_MOVABLE',
    `a handle of kind '${state.kind}' on this transport cannot move to another thread`,
  );
}

/**
 * Turns a handle state into a token for another thread; the state is dead afterwards. Data
 * pipe ends go as their own module makes them travel.
 */
export function exportState(state: HandleState, transfer: Transferable[]): HandleToken {
  checkMovable(state);
  if (!(state instanceof PipeEndState)) return exportEndpointState(state, transfer);
  const token = pipeStateToToken(state);
  transfer.push(token.port);
  return token;
}

/**
 * {@link exportState} for a channel endpoint that {@link checkMovable} accepted. A local end
 * whose peer stays becomes one side of a new shared pair: the peer forwards to the other side,
 * and the messages queued on both are replayed into the rings.
 */
export function exportEndpointState(state: HandleState, transfer: Transferable[]): EndpointToken {
  if (state instanceof SharedEndpoint) return state.moveOut(transfer);
  const local = state as LocalEndpoint;
  const remote = local.takeRemote();
  if (remote !== undefined) return exportEndpointState(remote, transfer);
  let stay: SharedEndpoint | undefined;
  let leave: SharedEndpoint | undefined;
  let forPeer: RawMessage[] = [];
  const own = local.detach((peerSide) => {
    [stay, leave] = SharedEndpoint.pair(
      peerSide.limits,
      [peerSide.counters, local.counters],
      resolveWakePolicy(),
    );
    forPeer = peerSide.queued;
    return stay;
  });
  if (stay === undefined || leave === undefined) {
    // The peer is gone already: the traveller still needs a ring to drain what it holds.
    [stay, leave] = SharedEndpoint.pair(
      own.limits,
      [newCounters(), own.counters],
      resolveWakePolicy(),
    );
    replay(stay, own.queued);
    stay.close();
  } else {
    replay(stay, own.queued);
    replay(leave, forPeer);
  }
  return leave.moveOut(transfer);
}

function replay(into: SharedEndpoint, messages: RawMessage[]): void {
  for (const m of messages) into.trySend(m.type, m.data, m.handles);
}
