import type {
  Channel,
  Message,
  OutgoingMessage,
  SendOptions,
  WaitOptions,
} from '../channel/index.js';
import { checkWaitOptions } from '../channel/wait.js';
import { IpcError, isIpcError } from '../errors.js';
import type { CallRouter } from './client.js';
import { encodeCancel, setTxid, withDeadline, withTrace } from './control.js';
import { ERROR_CODE_CAPACITY, ERROR_TEXT_CAPACITY, HEADER_BYTES } from './frame.js';
import {
  type CallDescriptor,
  decodeReply,
  discard,
  encodeMessage,
  type MessageDescriptor,
  type MessageTable,
  type Received,
} from './message.js';
import { Reader } from './reader.js';
import { type CallSpan, callTracer } from './trace.js';

export interface CallOptions {
  /**
   * Reject with TIMEOUT when no reply came in this many milliseconds, waiting for the window
   * included. The server's handler sees the deadline, and its signal fires when it passes.
   */
  timeoutMs?: number;
  /** Reject with ABORTED when aborted; the server's handler sees its signal fire. */
  signal?: AbortSignal;
}

export interface ClientOptions {
  /** The timeout of calls that do not give their own. Default: none. */
  timeoutMs?: number;
}

/** The largest error reply: the header, then code and text as `encodeErrorReply` cuts them. */
const ERROR_REPLY_BYTES = HEADER_BYTES + 4 + ERROR_CODE_CAPACITY + 4 + ERROR_TEXT_CAPACITY;

/** Shared by generated clients and servers: typed one-way sends with Channel's backpressure options. */
export abstract class Peer<In extends Received> {
  readonly channel: Channel;
  protected readonly table: MessageTable<In>;

  constructor(channel: Channel, table: MessageTable<In>) {
    this.channel = channel;
    this.table = table;
  }

  /** Like `Channel.send`: false when dropped by `onFull`, throws BACKPRESSURE without it. */
  send<T>(d: MessageDescriptor<T>, value: T, options?: SendOptions): boolean {
    return this.channel.send(encodeMessage(d, value, 0, true), options);
  }

  /** Like `Channel.sendWait`: waits while the peer's queue is full. */
  sendWait<T>(d: MessageDescriptor<T>, value: T, options?: WaitOptions): Promise<void> {
    try {
      return this.channel.sendWait(encodeMessage(d, value), options);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  close(): void {
    this.channel.close();
  }
}

/** A call from `call()` until it settles, and after that until its reply is in (or never will be). */
class ClientCall {
  txid = 0;
  settled = false;
  /** Encoded with transaction id 0 while it waits for the window; owns its memory. */
  message: OutgoingMessage | undefined;
  /** `performance.now()` by which the call times out, sent along as the handler's deadline. */
  deadline: number | undefined;
  /** Its span while tracing is on. */
  span: CallSpan | undefined;
  timer: ReturnType<typeof setTimeout> | undefined;
  onAbort: (() => void) | undefined;

  readonly d: CallDescriptor<unknown, unknown>;
  /** Bytes of the client's queue its reply may take: held from sending until the reply. */
  readonly reserve: number;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: IpcError) => void;
  readonly signal: AbortSignal | undefined;

  constructor(
    d: CallDescriptor<unknown, unknown>,
    reserve: number,
    resolve: (value: unknown) => void,
    reject: (error: IpcError) => void,
    signal: AbortSignal | undefined,
  ) {
    this.d = d;
    this.reserve = reserve;
    this.resolve = resolve;
    this.reject = reject;
    this.signal = signal;
  }
}

/**
 * The client side of a protocol. It owns receiving on its channel: replies go to the calls that
 * wait for them and pushes to `recv()`.
 *
 * Calls are windowed: one is sent only while the replies of all calls in flight, its own
 * included, fit in half this end's receive queue (`capacity` messages, `capacityBytes` bytes at
 * the reply's largest size), so a reply never meets a full queue because of this client's calls.
 * Calls beyond the window wait in order. While calls are in flight the client reads its queue
 * at once, holding pushes nobody reads yet, up to `capacity` of them; with that many held it
 * stops reading (the server feels backpressure) and fails the calls waiting for replies with
 * BACKPRESSURE, naming the unread pushes, as their replies are stuck behind them.
 */
export class RpcClient<In extends Received = Received> extends Peer<In> implements CallRouter<In> {
  /** Calls sent and not yet answered, settled ones included: their reply still takes room. */
  readonly #inFlight = new Map<number, ClientCall>();
  #inFlightBytes = 0;
  /** Calls waiting for the window, oldest first from `#waitingHead`. */
  #waiting: ClientCall[] = [];
  #waitingHead = 0;
  /** Set while waiting for room in the server's queue. */
  #blocked = false;
  readonly #recvWaiters: ((message: Message | IpcError) => void)[] = [];
  readonly #held: Message[] = [];
  readonly #defaultTimeoutMs: number | undefined;
  #lastTxid = 0;
  #reading = false;
  /** Why receiving ended for good: the channel closed, or the server went away. */
  #broken: IpcError | undefined;

  constructor(channel: Channel, table: MessageTable<In>, options: ClientOptions = {}) {
    super(channel, table);
    const invalid = checkWaitOptions(options);
    if (invalid !== undefined) throw invalid;
    this.#defaultTimeoutMs = options.timeoutMs;
  }

  /**
   * Calls sent whose reply has not come, those that timed out or were aborted included: a pool
   * tells from it that a handler still runs past its call's end.
   */
  get unanswered(): number {
    return this.#inFlight.size;
  }

  call<Req, Rep>(d: CallDescriptor<Req, Rep>, value: Req, options: CallOptions = {}): Promise<Rep> {
    const invalid = checkWaitOptions(options);
    if (invalid !== undefined)
      return Promise.reject(
        invalid.code === 'ABORTED'
          ? new IpcError('ABORTED', `${d.name} was aborted before it was sent`, {
              cause: invalid.cause,
            })
          : new IpcError('INVALID_ARGUMENT', `${d.name}: ${invalid.message}`),
      );
    const signal = options.signal;
    if (this.#broken !== undefined) return Promise.reject(this.#broken);
    if (this.#heldFull()) return Promise.reject(this.#unreadPushes(d.name));
    const timeoutMs = options.timeoutMs ?? this.#defaultTimeoutMs;
    let resolve!: (value: unknown) => void;
    let reject!: (error: IpcError) => void;
    const promise = new Promise<Rep>((res, rej) => {
      resolve = res as (value: unknown) => void;
      reject = rej;
    });
    const limits = this.channel.limits;
    const reserve = Math.min(
      limits.maxMessageBytes,
      Math.max(d.maxReplyBytes ?? limits.maxMessageBytes, ERROR_REPLY_BYTES),
    );
    const call = new ClientCall(
      d as CallDescriptor<unknown, unknown>,
      reserve,
      resolve,
      reject,
      signal,
    );
    if (timeoutMs !== undefined) {
      call.deadline = performance.now() + timeoutMs;
      call.timer = setTimeout(
        () =>
          this.#giveUp(
            call,
            new IpcError('TIMEOUT', `${d.name} got no reply within ${timeoutMs} ms`),
          ),
        timeoutMs,
      );
    }
    if (signal !== undefined) {
      call.onAbort = () =>
        this.#giveUp(
          call,
          new IpcError('ABORTED', `${d.name} was aborted`, { cause: signal.reason }),
        );
      signal.addEventListener('abort', call.onAbort, { once: true });
    }
    const tracer = callTracer;
    if (tracer !== undefined) call.span = tracer.client(d.name);
    try {
      if (this.#waitingHead === this.#waiting.length && this.#fits(call)) {
        // The common case: encode into the shared buffer and send at once.
        const txid = this.#nextTxid();
        let message = encodeMessage(
          d,
          value,
          txid,
          call.deadline === undefined && tracer === undefined,
        );
        if (call.deadline !== undefined) message = withDeadline(message, timeoutMs!);
        if (call.span?.context !== undefined) message = withTrace(message, call.span.context);
        if (this.#trySend(call, txid, message)) return promise;
      }
      call.message = encodeMessage(d, value);
      this.#waiting.push(call);
      if (!this.#blocked) this.#sendWaiting();
    } catch (error) {
      this.#settle(call, asIpcError(error));
    }
    return promise;
  }

  /** The next push from the server, decoded. Rejects PEER_CLOSED once the server is gone. */
  recv(): Promise<In> {
    const message = this.#held.shift();
    if (message !== undefined) {
      this.#read();
      return this.#decode(message);
    }
    return new Promise<Message | IpcError>((resolve) => {
      this.#recvWaiters.push(resolve);
      this.#read();
    }).then((m) => (m instanceof IpcError ? Promise.reject(m) : this.#decode(m)));
  }

  [Symbol.asyncIterator](): AsyncGenerator<In, void, undefined> {
    return untilClosed(() => this.recv());
  }

  #decode(message: Message): Promise<In> {
    try {
      return Promise.resolve(this.table.decode(message));
    } catch (error) {
      discard(message);
      return Promise.reject(error);
    }
  }

  #nextTxid(): number {
    // Zero means "no transaction"; skip ids still in flight after a wrap-around.
    do this.#lastTxid = this.#lastTxid === 0xffff_ffff ? 1 : this.#lastTxid + 1;
    while (this.#inFlight.has(this.#lastTxid));
    return this.#lastTxid;
  }

  /**
   * Half the queue: across a socket the server sees room only when the credit for a reply this
   * client took comes back, which may be after the call that took the reply's place. With the
   * taken-but-uncredited replies and those in flight each at most half, replies always fit.
   */
  #fits(call: ClientCall): boolean {
    const limits = this.channel.limits;
    if (this.#inFlight.size === 0) return true;
    return (
      this.#inFlight.size < Math.max(1, limits.capacity >> 1) &&
      this.#inFlightBytes + call.reserve <= limits.capacityBytes / 2
    );
  }

  #heldFull(): boolean {
    return this.#held.length >= this.channel.limits.capacity;
  }

  #unreadPushes(name: string): IpcError {
    return new IpcError(
      'BACKPRESSURE',
      `${name} cannot get its reply: ${this.#held.length} pushes from the server wait unread ` +
        'ahead of it; read them with recv() or for await, and calls work again',
    );
  }

  /** Sends a call's request; false when the server's queue is full (nothing was sent). */
  #trySend(call: ClientCall, txid: number, message: OutgoingMessage): boolean {
    try {
      this.channel.send(message);
    } catch (error) {
      if (isIpcError(error, 'BACKPRESSURE')) return false;
      throw error;
    }
    call.txid = txid;
    call.message = undefined;
    this.#inFlight.set(txid, call);
    this.#inFlightBytes += call.reserve;
    this.#read();
    return true;
  }

  /** Sends waiting calls, in order, while the window and the server's queue have room. */
  #sendWaiting(): void {
    const waiting = this.#waiting;
    while (this.#waitingHead < waiting.length) {
      const call = waiting[this.#waitingHead]!;
      if (!call.settled) {
        if (!this.#fits(call)) break;
        const txid = this.#nextTxid();
        let message = call.message!;
        setTxid(message.data!, txid);
        if (call.deadline !== undefined)
          message = withDeadline(message, call.deadline - performance.now());
        if (call.span?.context !== undefined) message = withTrace(message, call.span.context);
        try {
          if (!this.#trySend(call, txid, message)) {
            this.#blocked = true;
            this.channel.writable(message.data!.length).then(
              () => {
                this.#blocked = false;
                this.#sendWaiting();
              },
              (error: unknown) => this.#failAll(asIpcError(error)),
            );
            break;
          }
        } catch (error) {
          this.#settle(call, asIpcError(error));
        }
      }
      waiting[this.#waitingHead++] = undefined as unknown as ClientCall;
    }
    if (this.#waitingHead === waiting.length) {
      this.#waiting = [];
      this.#waitingHead = 0;
    } else if (this.#waitingHead > 1024 && this.#waitingHead * 2 > waiting.length) {
      this.#waiting = waiting.slice(this.#waitingHead);
      this.#waitingHead = 0;
    }
  }

  /** A timeout or an abort: the caller is told now; a sent call is cancelled at the server. */
  #giveUp(call: ClientCall, reason: IpcError): void {
    if (call.settled) return;
    this.#settle(call, reason);
    if (call.txid === 0) return;
    const cancel = encodeCancel(call.d.id, call.txid);
    try {
      this.channel.send(cancel);
    } catch (error) {
      // Behind a full queue the cancel waits its turn; a closed channel ended the call anyway.
      if (isIpcError(error, 'BACKPRESSURE')) this.channel.sendWait(cancel).catch(() => {});
    }
  }

  #settle(call: ClientCall, error: IpcError | undefined, value?: unknown): void {
    if (call.settled) return;
    call.settled = true;
    clearTimeout(call.timer);
    if (call.onAbort !== undefined) call.signal!.removeEventListener('abort', call.onAbort);
    call.message = undefined;
    call.span?.end(error);
    if (error === undefined) call.resolve(value);
    else call.reject(error);
  }

  /** Reads while calls are in flight or `recv()` waits, and fewer than `capacity` pushes are held. */
  #read(): void {
    if (this.#reading) return;
    if (this.#inFlight.size === 0 && this.#recvWaiters.length === 0) return;
    if (this.#heldFull()) return;
    this.#reading = true;
    void this.#readLoop();
  }

  async #readLoop(): Promise<void> {
    const capacity = this.channel.limits.capacity;
    try {
      while (
        (this.#inFlight.size > 0 || this.#recvWaiters.length > 0) &&
        this.#held.length < capacity
      ) {
        // At most as many as can be held, so the hold never exceeds `capacity`.
        const batch = await this.channel.recvBatch(capacity - this.#held.length);
        for (const message of batch) this.#route(message);
        if (!this.#blocked && this.#waitingHead < this.#waiting.length) this.#sendWaiting();
      }
    } catch (error) {
      this.#failAll(asIpcError(error));
      for (const waiter of this.#recvWaiters.splice(0)) waiter(asIpcError(error));
    } finally {
      this.#reading = false;
    }
    if (this.#heldFull()) {
      for (const call of this.#inFlight.values())
        this.#settle(call, this.#unreadPushes(call.d.name));
      this.#failWaiting((call) => this.#unreadPushes(call.d.name));
    }
  }

  /** The channel is unusable: no reply will come, so no call keeps its room either. */
  #failAll(reason: IpcError): void {
    this.#broken ??= reason;
    for (const call of this.#inFlight.values()) this.#settle(call, reason);
    this.#inFlight.clear();
    this.#inFlightBytes = 0;
    this.#failWaiting(() => reason);
  }

  #failWaiting(reason: (call: ClientCall) => IpcError): void {
    const waiting = this.#waiting;
    for (let i = this.#waitingHead; i < waiting.length; i++) {
      const call = waiting[i]!;
      this.#settle(call, reason(call));
    }
    this.#waiting = [];
    this.#waitingHead = 0;
  }

  #route(message: Message): void {
    let r: Reader;
    try {
      r = new Reader(message);
    } catch (error) {
      this.#deliver(message, error as IpcError);
      return;
    }
    if (!r.isReply) {
      this.#deliver(message);
      return;
    }
    const call = this.#inFlight.get(r.txid);
    if (call === undefined) {
      // Not a transaction of this client: nothing waits for it.
      discard(message);
      return;
    }
    this.#inFlight.delete(r.txid);
    this.#inFlightBytes -= call.reserve;
    if (call.settled) {
      // The call timed out or was aborted: its late reply is dropped quietly.
      discard(message);
      return;
    }
    try {
      const result = decodeReply(call.d, r, message);
      if (result instanceof IpcError) this.#settle(call, result);
      else this.#settle(call, undefined, result);
    } catch (error) {
      discard(message);
      this.#settle(call, error as IpcError);
    }
  }

  /** Hands a push to a waiting `recv()`, or holds it; `error` marks a message that cannot be read. */
  #deliver(message: Message, error?: IpcError): void {
    const waiter = this.#recvWaiters.shift();
    if (error !== undefined) discard(message);
    if (waiter === undefined) {
      if (error === undefined) this.#held.push(message);
    } else {
      waiter(error ?? message);
    }
  }
}

/** The pushes `recv` gives, ending quietly when the server or this end is closed. */
export async function* untilClosed<In>(
  recv: () => Promise<In>,
): AsyncGenerator<In, void, undefined> {
  for (;;) {
    try {
      yield await recv();
    } catch (error) {
      if (isIpcError(error, 'PEER_CLOSED') || isIpcError(error, 'CLOSED')) return;
      throw error;
    }
  }
}

export function asIpcError(error: unknown): IpcError {
  return error instanceof IpcError
    ? error
    : new IpcError('INVALID_ARGUMENT', String(error), { cause: error });
}
