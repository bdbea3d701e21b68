import type {
  Channel,
  Message,
  OnFull,
  OutgoingMessage,
  SendOptions,
  WaitOptions,
} from '../channel/index.js';
import { IpcError, isIpcError } from '../errors.js';
import {
  type CallDescriptor,
  decodeReply,
  discard,
  encodeErrorReply,
  encodeMessage,
  encodeReply,
  isCall,
  type MessageDescriptor,
  type MessageTable,
  type Received,
} from './message.js';
import { Reader } from './reader.js';

export interface CallOptions {
  /** Reject with TIMEOUT when no reply came in this many milliseconds (sending included). */
  timeoutMs?: number;
  /** Reject with ABORTED when aborted; a reply arriving later is dropped. */
  signal?: AbortSignal;
}

export interface ClientOptions {
  /** The timeout of calls that do not give their own. Default: none. */
  timeoutMs?: number;
}

interface Pending {
  readonly call: CallDescriptor<unknown, unknown>;
  readonly settle: (error: IpcError | undefined, value?: unknown) => void;
}

/** Shared by generated clients and servers: typed one-way sends with Channel's backpressure options. */
abstract class Peer<In extends Received> {
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

/**
 * The client side of a protocol. It owns receiving on its channel: replies go to the calls that
 * wait for them and pushes to `recv()`. It reads only while someone waits, so an idle client
 * leaves messages in the channel's bounded queue (backpressure reaches the server); pushes that
 * arrive while only calls wait are held, at most a queue's worth, before reading stops again.
 */
export class RpcClient<In extends Received = Received> extends Peer<In> {
  readonly #pending = new Map<number, Pending>();
  readonly #waiters: ((message: Message | IpcError) => void)[] = [];
  readonly #inbox: Message[] = [];
  readonly #defaultTimeoutMs: number | undefined;
  #lastTxid = 0;
  #pumping = false;

  constructor(channel: Channel, table: MessageTable<In>, options: ClientOptions = {}) {
    super(channel, table);
    this.#defaultTimeoutMs = options.timeoutMs;
  }

  call<Req, Rep>(d: CallDescriptor<Req, Rep>, value: Req, options: CallOptions = {}): Promise<Rep> {
    return new Promise<Rep>((resolve, reject) => {
      const timeoutMs = options.timeoutMs ?? this.#defaultTimeoutMs;
      const signal = options.signal;
      if (signal?.aborted)
        throw new IpcError('ABORTED', `${d.name} was aborted before it was sent`, {
          cause: signal.reason,
        });
      const txid = this.#nextTxid();
      const message = encodeMessage(d, value, txid);
      // Stops a send still waiting for room once the call is settled some other way.
      const sending = new AbortController();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const onAbort = () =>
        settle(new IpcError('ABORTED', `${d.name} was aborted`, { cause: signal?.reason }));
      const settle = (error: IpcError | undefined, result?: unknown) => {
        if (this.#pending.get(txid) !== pending) return;
        this.#pending.delete(txid);
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        sending.abort();
        if (error) reject(error);
        else resolve(result as Rep);
      };
      const pending: Pending = { call: d as CallDescriptor<unknown, unknown>, settle };
      this.#pending.set(txid, pending);
      if (timeoutMs !== undefined) {
        timer = setTimeout(
          () => settle(new IpcError('TIMEOUT', `${d.name} got no reply within ${timeoutMs} ms`)),
          timeoutMs,
        );
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      this.channel.sendWait(message, { signal: sending.signal }).then(
        () => this.#pump(),
        (error: unknown) =>
          settle(
            error instanceof IpcError
              ? error
              : new IpcError('INVALID_ARGUMENT', String(error), { cause: error }),
          ),
      );
    });
  }

  /** The next push from the server, decoded. Rejects PEER_CLOSED once the server is gone. */
  recv(): Promise<In> {
    const message = this.#inbox.shift();
    if (message !== undefined) return this.#decode(message);
    return new Promise<Message | IpcError>((resolve) => {
      this.#waiters.push(resolve);
      void this.#pump();
    }).then((m) => (m instanceof IpcError ? Promise.reject(m) : this.#decode(m)));
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<In, void, undefined> {
    for (;;) {
      try {
        yield await this.recv();
      } catch (error) {
        if (isIpcError(error, 'PEER_CLOSED') || isIpcError(error, 'CLOSED')) return;
        throw error;
      }
    }
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
    // Zero means "no transaction"; skip ids still waiting for a reply after a wrap-around.
    do this.#lastTxid = this.#lastTxid === 0xffff_ffff ? 1 : this.#lastTxid + 1;
    while (this.#pending.has(this.#lastTxid));
    return this.#lastTxid;
  }

  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (
        this.#waiters.length > 0 ||
        (this.#pending.size > 0 && this.#inbox.length < this.channel.limits.capacity)
      ) {
        this.#route(await this.channel.recv());
      }
    } catch (error) {
      const reason = isIpcError(error)
        ? error
        : new IpcError('CLOSED', String(error), { cause: error });
      for (const pending of [...this.#pending.values()]) pending.settle(reason);
      for (const waiter of this.#waiters.splice(0)) waiter(reason);
    } finally {
      this.#pumping = false;
    }
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
    const pending = this.#pending.get(r.txid);
    if (pending === undefined) {
      // The call timed out or was aborted: nobody wants this reply any more.
      discard(message);
      return;
    }
    try {
      const result = decodeReply(pending.call, r, message);
      if (result instanceof IpcError) pending.settle(result);
      else pending.settle(undefined, result);
    } catch (error) {
      discard(message);
      pending.settle(error as IpcError);
    }
  }

  /** Hands a push to a waiting `recv()`, or holds it; `error` marks a message that cannot be read. */
  #deliver(message: Message, error?: IpcError): void {
    const waiter = this.#waiters.shift();
    if (error !== undefined) discard(message);
    if (waiter === undefined) {
      if (error === undefined) this.#inbox.push(message);
    } else {
      waiter(error ?? message);
    }
  }
}

export interface ServeOptions {
  /**
   * What to do with a message that does not decode (its handles are closed either way): 'close'
   * the channel (the default, as a peer that sends garbage cannot be trusted) or 'ignore' it.
   */
  onInvalid?: 'close' | 'ignore' | ((error: IpcError, message: Message) => 'close' | 'ignore');
  /**
   * Called when a handler throws. A failed call is also answered with an error reply. Without it,
   * serving stops: the channel is closed and `serve` rejects with the error.
   */
  onError?: (error: unknown, kind: string) => void;
  /** Replies use Channel's strategies; the default 'close' tells a client that stopped reading. */
  replyOnFull?: OnFull;
}

/** Handlers by message kind: calls return their reply, pushes return nothing. */
type AnyHandlers = Record<string, (value: never) => unknown>;

/** The server side of a protocol: typed receive, replies, pushes, and a dispatch loop. */
export class RpcServer<In extends Received = Received> extends Peer<In> {
  /** The next request or push, decoded; an invalid one rejects INVALID_MESSAGE with its handles closed. */
  async recv(): Promise<In> {
    const message = await this.channel.recv();
    try {
      return this.table.decode(message);
    } catch (error) {
      discard(message);
      throw error;
    }
  }

  reply<Req, Rep>(
    d: CallDescriptor<Req, Rep>,
    txid: number,
    value: Rep,
    options?: SendOptions,
  ): boolean {
    return this.channel.send(encodeReply(d, txid, value, true), options);
  }

  replyError(
    d: CallDescriptor<unknown, unknown>,
    txid: number,
    error: unknown,
    options?: SendOptions,
  ): boolean {
    return this.channel.send(encodeErrorReply(d, txid, error), options);
  }

  /**
   * Receives and dispatches until the client closes (resolves) or a handler fails with no
   * `onError` (rejects). Handlers run one at a time, so a slow handler pushes back on the client.
   */
  protected async dispatch(handlers: object, options: ServeOptions = {}): Promise<void> {
    const byKind = handlers as AnyHandlers;
    const replyOptions = { onFull: options.replyOnFull ?? 'close' } as const;
    for (;;) {
      let message: Message;
      try {
        message = await this.channel.recv();
      } catch (error) {
        if (isIpcError(error, 'PEER_CLOSED') || isIpcError(error, 'CLOSED')) return;
        throw error;
      }
      let request: In;
      try {
        request = this.table.decode(message);
      } catch (error) {
        discard(message);
        const onInvalid = options.onInvalid ?? 'close';
        const action =
          typeof onInvalid === 'function' ? onInvalid(error as IpcError, message) : onInvalid;
        if (action === 'ignore') continue;
        this.close();
        return;
      }
      const d = this.table.get(message.type)!;
      let reply: OutgoingMessage | undefined;
      let failure: { error: unknown } | undefined;
      try {
        const result = await byKind[request.kind]!.call(handlers, request.value as never);
        if (isCall(d)) reply = encodeReply(d, request.txid!, result);
      } catch (error) {
        failure = { error };
        if (isCall(d)) reply = encodeErrorReply(d, request.txid!, error);
      }
      if (reply !== undefined) {
        try {
          this.channel.send(reply, replyOptions);
        } catch (error) {
          // A client that has gone away is not a failure of this server.
          if (!isIpcError(error, 'PEER_CLOSED') && !isIpcError(error, 'CLOSED'))
            failure ??= { error };
        }
      }
      if (failure !== undefined) {
        if (options.onError === undefined) {
          this.close();
          throw failure.error;
        }
        options.onError(failure.error, request.kind);
      }
    }
  }
}
