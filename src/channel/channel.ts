import { diagnostics } from '../diagnostics.js';
import { IpcError, isIpcError } from '../errors.js';
import { Deque } from './deque.js';
import {
  type ChannelLimits,
  type Endpoint,
  type EndpointEvents,
  type HandleState,
  type RawMessage,
  type Room,
  SEND_OK,
  SEND_PEER_CLOSED,
  type SendStatus,
} from './endpoint.js';
import { adoptHandle, type Handle, kHandleState, kRelease, registerHandleKind } from './handle.js';
import { LocalEndpoint } from './local.js';
import { checkWaitOptions, waitInQueue } from './wait.js';

export interface ChannelOptions {
  /** Messages each endpoint's receive queue holds. Default 32, as in FTL. */
  capacity?: number;
  /** Bytes of message data each receive queue holds. Default 1 MiB. */
  capacityBytes?: number;
  /** Largest `data` of one message. Default 64 KiB (or `capacityBytes`, if smaller). */
  maxMessageBytes?: number;
  /** Most handles in one message. Default 64. */
  maxHandles?: number;
}

export interface OutgoingMessage {
  /** The message type id, a uint32. */
  type: number;
  /** Copied at send: the caller may reuse the buffer as soon as `send` returns. */
  data?: Uint8Array;
  /** Moved with the message: on success the sender's objects are dead. */
  handles?: readonly Handle[];
}

export interface Message {
  type: number;
  data: Uint8Array;
  handles: Handle[];
}

/**
 * A received message lent by {@link Channel.tryRecvView}: the same object on every call, valid
 * until the next receive on this channel. Copy what must outlive it (`data` may then be reused).
 */
export interface MessageView {
  readonly type: number;
  readonly data: Uint8Array;
  /** The handles are the caller's to keep: they stay valid after the view moves on. */
  readonly handles: readonly Handle[];
}

/** What to do when the peer's queue is full. */
export type OnFull = 'throw' | 'drop' | 'close';

export interface SendOptions {
  /** 'throw' (default) throws BACKPRESSURE; 'drop' drops the message; 'close' drops it and closes. */
  onFull?: OnFull;
}

export interface SendBatchOptions {
  /** Index of the first message to send. Default 0. */
  start?: number;
  /** Index after the last message to send. Default, and at most, `messages.length`. */
  end?: number;
}

export interface WaitOptions {
  /** Give up after this many milliseconds with TIMEOUT. */
  timeoutMs?: number;
  /** Give up when aborted, with ABORTED (the signal's reason as `cause`). */
  signal?: AbortSignal;
}

/** Why `closed` settled: this side closed, the peer closed, or this object was sent away. */
export type CloseReason = 'local' | 'peer' | 'moved';

export interface ChannelStats {
  /** Messages this endpoint sent. */
  sent: number;
  /** Messages this endpoint received. */
  received: number;
  /**
   * Data bytes of the messages sent and received (handles not counted). Sends the peer dropped
   * unread after its close are taken out of `sent` but stay in `sentBytes`.
   */
  sentBytes: number;
  receivedBytes: number;
  /** Messages dropped by `onFull: 'drop' | 'close'`. */
  dropped: number;
  /** Sends that found the peer's queue full, whatever the strategy. */
  backpressured: number;
  /** Messages destroyed unread when this endpoint closed. */
  discarded: number;
  /** Messages and bytes waiting in this endpoint's receive queue. */
  queuedMessages: number;
  queuedBytes: number;
  /** Most messages ever waiting in this endpoint's receive queue at once. */
  highWaterMark: number;
}

export const DEFAULT_LIMITS: ChannelLimits = Object.freeze({
  capacity: 32,
  capacityBytes: 1024 * 1024,
  maxMessageBytes: 64 * 1024,
  maxHandles: 64,
});

const UINT32_MAX = 0xffff_ffff;
/**
 * How long waiting senders wait for the low-water mark before any room will do: a receiver that
 * stopped reading until this sender moves on must not deadlock with it.
 */
const RESUME_GRACE_MS = 1;

/** The strategy an `onFull` option names ('throw' when absent); anything else is rejected. */
export function checkOnFull(onFull: OnFull | undefined): OnFull {
  if (onFull === undefined) return 'throw';
  if (onFull === 'throw' || onFull === 'drop' || onFull === 'close') return onFull;
  throw new IpcError(
    'INVALID_ARGUMENT',
    `onFull must be 'throw', 'drop' or 'close', got ${String(onFull)}`,
  );
}

function positiveInteger(name: string, value: unknown, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    throw new IpcError(
      'INVALID_ARGUMENT',
      `${name} must be an integer from 1 to ${max}, got ${String(value)}`,
    );
  }
  return value;
}

/** Fills in defaults and rejects limits that could never let a message through. */
export function resolveLimits(options: ChannelOptions = {}): ChannelLimits {
  const capacity = positiveInteger(
    'capacity',
    options.capacity ?? DEFAULT_LIMITS.capacity,
    2 ** 30,
  );
  const capacityBytes = positiveInteger(
    'capacityBytes',
    options.capacityBytes ?? DEFAULT_LIMITS.capacityBytes,
    2 ** 31,
  );
  const maxMessageBytes = positiveInteger(
    'maxMessageBytes',
    options.maxMessageBytes ?? Math.min(DEFAULT_LIMITS.maxMessageBytes, capacityBytes),
    2 ** 31,
  );
  if (maxMessageBytes > capacityBytes) {
    throw new IpcError(
      'INVALID_ARGUMENT',
      `maxMessageBytes (${maxMessageBytes}) exceeds capacityBytes (${capacityBytes}): such a message could never be queued`,
    );
  }
  const maxHandles = options.maxHandles ?? DEFAULT_LIMITS.maxHandles;
  if (!Number.isInteger(maxHandles) || maxHandles < 0 || maxHandles > 65535) {
    throw new IpcError(
      'INVALID_ARGUMENT',
      `maxHandles must be an integer from 0 to 65535, got ${maxHandles}`,
    );
  }
  return Object.freeze({ capacity, capacityBytes, maxMessageBytes, maxHandles });
}

interface RecvWaiter {
  /** 0 for recv(); the batch size for recvBatch(); READABLE for readable(). */
  max: number;
  resolve(value: Message | Message[] | undefined): void;
  reject(err: IpcError): void;
}

interface SendWaiter {
  message: OutgoingMessage;
  resolve(): void;
  reject(err: IpcError): void;
}

interface WritableWaiter {
  bytes: number;
  resolve(): void;
  reject(err: IpcError): void;
}

/**
 * One endpoint of a bi-directional, bounded message channel. Create them in pairs with
 * {@link Channel.pair}; move them to other channels, threads or processes as handles.
 */
export class Channel implements Handle {
  #endpoint: Endpoint | undefined;
  /** What this object installed on the endpoint; a transport may install its own on a move. */
  #events: EndpointEvents;
  #closeReason: CloseReason | undefined;
  #resolveClosed!: (reason: CloseReason) => void;
  #finalStats: ChannelStats | undefined;
  #recvWaiters = new Deque<RecvWaiter>();
  #sendWaiters = new Deque<SendWaiter>();
  #writableWaiters = new Deque<WritableWaiter>();
  /** Room worth waking a waiting sender for: half the peer's queue. See #armForRoom. */
  readonly #lowWater: Room;
  /** When waiting senders began to wait for the low-water mark; -1 when none wait. */
  #waitingSince = -1;
  #graceExpired = false;
  readonly #view: { type: number; data: Uint8Array; handles: readonly Handle[] } = {
    type: 0,
    data: EMPTY,
    handles: NO_ADOPTED,
  };

  /** Settles when either side has closed, or this object was moved away. Never rejects. */
  readonly closed: Promise<CloseReason>;
  /** The limits this endpoint's messages are checked against; they never change. */
  readonly limits: ChannelLimits;

  /** Wraps a transport endpoint. Applications get channels from `Channel.pair()` or transports. */
  constructor(endpoint: Endpoint) {
    this.closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
    this.#endpoint = endpoint;
    this.limits = endpoint.limits;
    this.#lowWater = Object.freeze({
      messages: Math.ceil(this.limits.capacity / 2),
      bytes: Math.ceil(this.limits.capacityBytes / 2),
    });
    this.#events = {
      readable: () => this.#serveReceivers(),
      writable: () => this.#serveSenders(),
      peerClosed: () => this.#onPeerClosed(),
    };
    endpoint.events = this.#events;
    if (endpoint.peerClosed) this.#settleClosed('peer');
  }

  /** Creates two connected endpoints in this thread. */
  static pair(options?: ChannelOptions): [Channel, Channel] {
    const [a, b] = LocalEndpoint.pair(resolveLimits(options));
    return [new Channel(a), new Channel(b)];
  }

  get stats(): ChannelStats {
    const endpoint = this.#endpoint;
    return endpoint === undefined ? { ...(this.#finalStats as ChannelStats) } : statsOf(endpoint);
  }

  /**
   * Sends without blocking. Returns true when queued at the peer, false when dropped by
   * `onFull`. Throws IpcError: CLOSED, INVALID_ARGUMENT, TOO_LARGE, TOO_MANY_HANDLES,
   * HANDLE_NOT_MOVABLE, PEER_CLOSED, BACKPRESSURE (checked in that order).
   */
  send(message: OutgoingMessage, options?: SendOptions): boolean {
    const endpoint = this.#live();
    const onFull = checkOnFull(options?.onFull);
    const status = this.#trySend(endpoint, message);
    if (status === SEND_OK) return true;
    if (status === SEND_PEER_CLOSED) throw peerClosedError();
    const bytes = message.data?.byteLength ?? 0;
    endpoint.counters.backpressured++;
    if (diagnostics.backpressure.hasSubscribers) {
      diagnostics.backpressure.publish({ channel: this, type: message.type, bytes, onFull });
    }
    if (onFull === 'throw') throw backpressureError(endpoint, bytes);
    endpoint.counters.dropped++;
    if (diagnostics.drop.hasSubscribers) {
      diagnostics.drop.publish({ channel: this, type: message.type, bytes, onFull });
    }
    if (onFull === 'close') this.close();
    return false;
  }

  /**
   * Sends `messages[start..end)` in order, as many as fit in the peer's queue now, and returns how
   * many it sent: a hot loop's one step instead of one `send` per message. Each message is all or
   * nothing (its handles move only when it is sent). A full queue ends the batch (never
   * BACKPRESSURE, counted once in `stats.backpressured`); so does a message that would throw, and
   * then the call throws only if it is the first, so a later call reports it. Throws as `send`.
   */
  sendBatch(messages: readonly OutgoingMessage[], options?: SendBatchOptions): number {
    const endpoint = this.#live();
    if (!Array.isArray(messages)) {
      throw new IpcError('INVALID_ARGUMENT', `messages must be an array, got ${String(messages)}`);
    }
    const start = options?.start ?? 0;
    const end = options?.end ?? messages.length;
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || start > end) {
      throw new IpcError(
        'INVALID_ARGUMENT',
        `start and end must be integers with 0 <= start <= end, got ${String(start)} and ${String(end)}`,
      );
    }
    const last = Math.min(end, messages.length);
    let i = start;
    endpoint.deferSends?.();
    try {
      for (; i < last; i++) {
        let status: SendStatus;
        try {
          status = this.#trySend(endpoint, messages[i] as OutgoingMessage);
        } catch (err) {
          if (i === start) throw err;
          break;
        }
        if (status === SEND_OK) continue;
        if (status === SEND_PEER_CLOSED) {
          if (i === start) throw peerClosedError();
        } else endpoint.counters.backpressured++;
        break;
      }
    } finally {
      endpoint.flushSends?.();
    }
    return i - start;
  }

  /**
   * Sends, waiting while the peer's queue is full. Waiting senders are served first come first
   * served. Rejects with TIMEOUT, ABORTED, PEER_CLOSED or CLOSED, and then the message was not
   * sent and its handles are still the caller's; invalid messages reject at once.
   */
  sendWait(message: OutgoingMessage, options: WaitOptions = {}): Promise<void> {
    try {
      const endpoint = this.#live();
      // Before the queue: an aborted signal sends nothing, even when there is room.
      const invalid = checkWaitOptions(options);
      if (invalid !== undefined) throw invalid;
      if (this.#sendWaiters.length === 0) {
        const status = this.#trySend(endpoint, message);
        if (status === SEND_OK) return Promise.resolve();
        if (status === SEND_PEER_CLOSED) throw peerClosedError();
        endpoint.counters.backpressured++;
      } else {
        // Validate now so a bad message fails at once instead of after the queue ahead of it.
        this.#collectHandles(endpoint, message);
      }
      const waiting = waitInQueue(
        this.#sendWaiters,
        options,
        (resolve, reject) => ({ message, resolve, reject }),
        "no room in the peer's queue",
        this.#roomWaiterGaveUp,
      );
      this.#armForRoom(endpoint);
      return waiting;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Resolves when a message with `bytes` of data would be accepted without backpressure. */
  writable(bytes = 0, options: WaitOptions = {}): Promise<void> {
    let endpoint: Endpoint;
    try {
      endpoint = this.#live();
      if (!Number.isInteger(bytes) || bytes < 0) {
        throw new IpcError(
          'INVALID_ARGUMENT',
          `bytes must be an integer >= 0, got ${typeof bytes === 'string' ? `'${bytes}'` : String(bytes)}`,
        );
      }
      const invalid = checkWaitOptions(options);
      if (invalid !== undefined) throw invalid;
    } catch (err) {
      return Promise.reject(err);
    }
    const status = endpoint.canSend(bytes);
    if (status === SEND_OK && this.#sendWaiters.length === 0) return Promise.resolve();
    if (status === SEND_PEER_CLOSED) return Promise.reject(peerClosedError());
    const waiting = waitInQueue(
      this.#writableWaiters,
      options,
      (resolve, reject) => ({ bytes, resolve, reject }),
      "no room in the peer's queue",
      this.#roomWaiterGaveUp,
    );
    this.#armForRoom(endpoint);
    return waiting;
  }

  /** Takes the oldest message, waiting for one. Rejects PEER_CLOSED once drained, or CLOSED. */
  recv(): Promise<Message> {
    return this.#receive(0) as Promise<Message>;
  }

  /** Waits for at least one message, then takes up to `max` that are available at once. */
  recvBatch(max = Number.POSITIVE_INFINITY): Promise<Message[]> {
    if (!(max >= 1)) {
      return Promise.reject(
        new IpcError('INVALID_ARGUMENT', `max must be at least 1, got ${String(max)}`),
      );
    }
    return this.#receive(max) as Promise<Message[]>;
  }

  /** Takes the oldest message if there is one. Throws PEER_CLOSED once drained, or CLOSED. */
  tryRecv(): Message | undefined {
    const endpoint = this.#live();
    const raw = this.#tryTake(endpoint);
    return raw === undefined ? undefined : this.#deliver(endpoint, raw);
  }

  /**
   * As `tryRecv`, without a `Message` object per message: returns the same {@link MessageView}
   * each time, valid until the next receive on this channel. With {@link readable}, a receive
   * loop that allocates nothing of its own per message.
   */
  tryRecvView(): MessageView | undefined {
    const endpoint = this.#live();
    const raw = this.#tryTake(endpoint, true);
    if (raw === undefined) return undefined;
    // One read of `counters`: a transport's may be a getter, and each read costs a call.
    const counters = endpoint.counters;
    counters.received++;
    counters.receivedBytes += raw.data.byteLength;
    const view = this.#view;
    view.type = raw.type;
    view.data = raw.data;
    view.handles = raw.handles.length === 0 ? NO_ADOPTED : raw.handles.map(adoptHandle);
    return view;
  }

  /**
   * Resolves when a message is queued here, taking none; rejects as `recv` does (PEER_CLOSED
   * once drained, or CLOSED). Waits in line with `recv` calls.
   */
  readable(): Promise<void> {
    return this.#receive(READABLE) as Promise<void>;
  }

  /** Yields messages until the peer has closed and the queue is drained, or this side closes. */
  async *[Symbol.asyncIterator](): AsyncGenerator<Message, void, undefined> {
    for (;;) {
      // One at a time: a batch taken here would be lost if the loop breaks midway.
      let message: Message;
      try {
        message = await this.recv();
      } catch (err) {
        if (isIpcError(err, 'PEER_CLOSED') || isIpcError(err, 'CLOSED')) return;
        throw err;
      }
      yield message;
    }
  }

  /**
   * Closes this endpoint. Idempotent. Messages still queued here are discarded and the handles
   * they carry are closed; the peer drains what it has, then sees PEER_CLOSED.
   */
  close(): void {
    const endpoint = this.#endpoint;
    if (endpoint === undefined) return;
    this.#detach('local');
    if (diagnostics.close.hasSubscribers) diagnostics.close.publish({ channel: this, by: 'local' });
    endpoint.close();
    this.#finalStats = statsOf(endpoint);
  }

  /** @internal The endpoint behind this object, for moving it; undefined when dead. */
  [kHandleState](): HandleState | undefined {
    return this.#endpoint;
  }

  /** @internal Kills this object without closing its endpoint, which now travels elsewhere. */
  [kRelease](): void {
    this.#detach('moved');
  }

  #live(): Endpoint {
    const endpoint = this.#endpoint;
    if (endpoint !== undefined) return endpoint;
    throw new IpcError(
      'CLOSED',
      this.#closeReason === 'moved'
        ? 'this channel endpoint was sent away as a handle and can no longer be used'
        : 'this channel endpoint is closed',
    );
  }

  /** Checks a message and sends it if there is room. Throws for anything but room and peer. */
  #trySend(endpoint: Endpoint, message: OutgoingMessage): SendStatus {
    const handles = this.#collectHandles(endpoint, message);
    const data = message.data ?? EMPTY;
    const status = endpoint.trySend(message.type, data, handles);
    if (status !== SEND_OK) return status;
    const counters = endpoint.counters;
    counters.sent++;
    counters.sentBytes += data.byteLength;
    if (handles.length > 0) for (const h of message.handles as readonly Handle[]) h[kRelease]();
    return SEND_OK;
  }

  /** Validates a message and returns the states of its handles, without moving them. */
  #collectHandles(endpoint: Endpoint, message: OutgoingMessage): HandleState[] {
    if (typeof message !== 'object' || message === null) {
      throw new IpcError('INVALID_ARGUMENT', `a message must be an object, got ${String(message)}`);
    }
    const { type, data, handles } = message;
    if (!Number.isInteger(type) || type < 0 || type > UINT32_MAX) {
      throw new IpcError('INVALID_ARGUMENT', `message type must be a uint32, got ${String(type)}`);
    }
    if (data !== undefined && !(data instanceof Uint8Array)) {
      throw new IpcError('INVALID_ARGUMENT', 'message data must be a Uint8Array');
    }
    if (handles !== undefined && !Array.isArray(handles)) {
      throw new IpcError('INVALID_ARGUMENT', 'message handles must be an array');
    }
    const limits = endpoint.limits;
    const bytes = data?.byteLength ?? 0;
    if (bytes > limits.maxMessageBytes) {
      throw new IpcError(
        'TOO_LARGE',
        `message data is ${bytes} bytes; this channel allows at most ${limits.maxMessageBytes}`,
      );
    }
    if (handles === undefined || handles.length === 0) return NO_HANDLES;
    if (handles.length > limits.maxHandles) {
      throw new IpcError(
        'TOO_MANY_HANDLES',
        `message carries ${handles.length} handles; this channel allows at most ${limits.maxHandles}`,
      );
    }
    const states: HandleState[] = [];
    for (let i = 0; i < handles.length; i++) {
      const handle = handles[i];
      if (typeof handle?.[kHandleState] !== 'function') {
        throw new IpcError('INVALID_ARGUMENT', `handles[${i}] is not a Channel or another handle`);
      }
      const state = handle[kHandleState]();
      if (state === undefined) {
        throw new IpcError('HANDLE_NOT_MOVABLE', `handles[${i}] is closed or was already moved`);
      }
      // Both ways round: only one side may know the path (a socket end sees through its bridge).
      if (state === endpoint || endpoint.isPeer(state) || isPeerOf(state, endpoint)) {
        throw new IpcError(
          'HANDLE_NOT_MOVABLE',
          `handles[${i}] is this channel or its peer; an endpoint cannot travel through its own channel`,
        );
      }
      if (states.includes(state)) {
        throw new IpcError('HANDLE_NOT_MOVABLE', `handles[${i}] appears twice in the message`);
      }
      states.push(state);
    }
    return states;
  }

  /** Takes the oldest message unless receivers wait; throws PEER_CLOSED once drained. */
  #tryTake(endpoint: Endpoint, lend = false): RawMessage | undefined {
    if (this.#recvWaiters.length > 0) return undefined;
    const raw = endpoint.take(lend);
    if (raw === undefined && endpoint.peerClosed) throw peerClosedError();
    return raw;
  }

  #receive(max: number): Promise<Message | Message[] | undefined> {
    let endpoint: Endpoint;
    try {
      endpoint = this.#live();
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.#recvWaiters.length === 0) {
      if (endpoint.queuedMessages > 0) return Promise.resolve(this.#takeFor(endpoint, max));
      if (endpoint.peerClosed) return Promise.reject(peerClosedError());
    }
    return new Promise((resolve, reject) => {
      this.#recvWaiters.push({ max, resolve, reject });
      endpoint.armReadable();
    });
  }

  #takeFor(endpoint: Endpoint, max: number): Message | Message[] | undefined {
    if (max === READABLE) return undefined;
    if (max === 0) return this.#deliver(endpoint, endpoint.take() as RawMessage);
    // What is queued now, not what a producer in another thread adds while this loop runs:
    // otherwise one batch could grow without bound and hold far more than the queue's limits.
    const count = Math.min(max, endpoint.queuedMessages);
    const batch: Message[] = [];
    for (let raw = endpoint.take(); raw !== undefined; ) {
      batch.push(this.#deliver(endpoint, raw));
      if (batch.length >= count) break;
      raw = endpoint.take();
    }
    return batch;
  }

  #deliver(endpoint: Endpoint, raw: RawMessage): Message {
    const counters = endpoint.counters;
    counters.received++;
    counters.receivedBytes += raw.data.byteLength;
    // Nobody else holds `raw` (see Endpoint.take): it becomes the Message, one object fewer.
    const message = raw as unknown as Message;
    message.handles = raw.handles.length === 0 ? [] : raw.handles.map(adoptHandle);
    return message;
  }

  #serveReceivers(): void {
    const endpoint = this.#endpoint;
    if (endpoint === undefined) return;
    while (this.#recvWaiters.length > 0 && endpoint.queuedMessages > 0) {
      const waiter = this.#recvWaiters.shift() as RecvWaiter;
      waiter.resolve(this.#takeFor(endpoint, waiter.max));
    }
    if (this.#recvWaiters.length > 0) endpoint.armReadable();
  }

  /**
   * Waiting senders wake when the peer's queue is down to the low-water mark (half free), so a
   * wake-up is followed by a run of sends rather than one: a transport that honours the mark is
   * told it and waits for it. `send` itself still succeeds up to capacity. Should the
   * receiver stop short of the mark, the grace check arms for any room after RESUME_GRACE_MS.
   */
  #armForRoom(endpoint: Endpoint): void {
    // A transport that wakes on any room needs no grace: the mark then costs nothing.
    if (endpoint.honoursLowWater !== true) {
      endpoint.armWritable();
      return;
    }
    if (this.#waitingSince < 0) {
      this.#waitingSince = performance.now();
      watchGrace(this.#graceCheck);
    }
    endpoint.armWritable(this.#graceExpired ? undefined : this.#lowWater);
  }

  /** Waiting senders are served (or gone): the next stall waits for the mark again. */
  #endGrace(): void {
    if (this.#waitingSince >= 0) graceWatched.delete(this.#graceCheck);
    this.#waitingSince = -1;
    this.#graceExpired = false;
  }

  readonly #graceCheck = (now: number): void => {
    if (now - this.#waitingSince < RESUME_GRACE_MS) return;
    graceWatched.delete(this.#graceCheck);
    this.#graceExpired = true;
    if (this.#endpoint !== undefined) this.#serveSenders();
  };

  #serveSenders(): void {
    const endpoint = this.#endpoint;
    if (endpoint === undefined) return;
    let served = 0;
    for (let waiter = this.#sendWaiters.peek(); waiter !== undefined; ) {
      let failure: IpcError | undefined;
      try {
        // PEER_CLOSED cannot happen here: peerClosed() rejects every waiter first.
        if (this.#trySend(endpoint, waiter.message) !== SEND_OK) break;
      } catch (err) {
        // A handle was closed or moved while the message waited.
        failure = err as IpcError;
      }
      this.#sendWaiters.shift();
      served++;
      if (failure === undefined) waiter.resolve();
      else waiter.reject(failure);
      waiter = this.#sendWaiters.peek();
    }
    if (this.#sendWaiters.length === 0) {
      for (const w of this.#writableWaiters.drain()) {
        if (endpoint.canSend(w.bytes) === SEND_OK) {
          served++;
          w.resolve();
        } else this.#writableWaiters.push(w);
      }
    }
    if (served > 0) this.#endGrace();
    if (this.#sendWaiters.length > 0 || this.#writableWaiters.length > 0)
      this.#armForRoom(endpoint);
  }

  #onPeerClosed(): void {
    this.#endGrace();
    this.#settleClosed('peer');
    const recv = this.#endpoint?.queuedMessages === 0 ? this.#recvWaiters.length : 0;
    if (this.#sendWaiters.length + this.#writableWaiters.length + recv > 0) {
      const err = peerClosedError();
      for (const w of this.#sendWaiters.drain()) w.reject(err);
      for (const w of this.#writableWaiters.drain()) w.reject(err);
      if (recv > 0) for (const w of this.#recvWaiters.drain()) w.reject(err);
    }
    if (diagnostics.close.hasSubscribers) diagnostics.close.publish({ channel: this, by: 'peer' });
  }

  /** Makes this object dead: pending operations fail with CLOSED; the endpoint is left alone. */
  #detach(reason: CloseReason): void {
    const endpoint = this.#endpoint as Endpoint;
    this.#finalStats = statsOf(endpoint);
    this.#endpoint = undefined;
    this.#closeReason = reason;
    this.#endGrace();
    // A transport that took the endpoint in trySend (a socket bridge) may already own it.
    if (endpoint.events === this.#events) endpoint.events = undefined;
    this.#settleClosed(reason);
    // Capturing a stack costs more than the rest of a move: only when somebody waits.
    if (this.#recvWaiters.length + this.#sendWaiters.length + this.#writableWaiters.length === 0) {
      return;
    }
    const err = new IpcError(
      'CLOSED',
      reason === 'moved'
        ? 'the channel endpoint was sent away while this operation waited'
        : 'the channel endpoint was closed while this operation waited',
    );
    for (const w of this.#recvWaiters.drain()) w.reject(err);
    for (const w of this.#sendWaiters.drain()) w.reject(err);
    for (const w of this.#writableWaiters.drain()) w.reject(err);
  }

  /** The first reason wins; a promise settles once. */
  #settleClosed(reason: CloseReason): void {
    this.#resolveClosed(reason);
  }

  /** A sendWait or writable timed out or was aborted: is anybody still waiting for room? */
  readonly #roomWaiterGaveUp = () => {
    if (this.#sendWaiters.length === 0 && this.#writableWaiters.length === 0) {
      this.#endGrace();
      this.#endpoint?.disarmWritable?.();
    }
  };
}

const EMPTY = new Uint8Array(0);
const NO_HANDLES: HandleState[] = [];
const NO_ADOPTED: readonly Handle[] = Object.freeze([]);
/** The `max` of a receive waiter that takes nothing: `readable()`. */
const READABLE = -1;

/**
 * The grace checks of channels whose senders wait for the low-water mark, and one timer for all
 * of them, running only while there are any: a stall costs a set entry, not a timer of its own.
 * The timer is ref'd so that a receiver and sender waiting on each other get past the grace.
 */
const graceWatched = new Set<(now: number) => void>();
let graceTicking = false;

function watchGrace(check: (now: number) => void): void {
  graceWatched.add(check);
  if (graceTicking) return;
  graceTicking = true;
  setTimeout(graceTick, RESUME_GRACE_MS);
}

function graceTick(): void {
  const now = performance.now();
  for (const check of graceWatched) check(now);
  if (graceWatched.size > 0) setTimeout(graceTick, RESUME_GRACE_MS);
  else graceTicking = false;
}

function statsOf(endpoint: Endpoint): ChannelStats {
  return {
    ...endpoint.counters,
    queuedMessages: endpoint.queuedMessages,
    queuedBytes: endpoint.queuedBytes,
  };
}

function peerClosedError(): IpcError {
  return new IpcError('PEER_CLOSED', 'the peer endpoint is closed');
}

function backpressureError(endpoint: Endpoint, bytes: number): IpcError {
  const { capacity, capacityBytes } = endpoint.limits;
  return new IpcError(
    'BACKPRESSURE',
    `the peer's queue is full (capacity ${capacity} messages, ${capacityBytes} bytes); a message of ${bytes} bytes was not sent`,
  );
}

registerHandleKind('channel', (state) => new Channel(state as Endpoint));

function isPeerOf(state: HandleState, endpoint: Endpoint): boolean {
  return state.kind === 'channel' && (state as Endpoint).isPeer(endpoint);
}
