import diagnosticsChannel from 'node:diagnostics_channel';
import type { Message, OnFull, SendOptions } from '../channel/index.js';
import { IpcError, isIpcError } from '../errors.js';
import { readControl } from './control.js';
import {
  type CallDescriptor,
  discard,
  encodeErrorReply,
  encodeReply,
  isCall,
  type MessageDescriptor,
  type MessageTable,
  type Received,
} from './message.js';
import { Peer } from './rpc.js';
import { type CallSpan, callTracer } from './trace.js';

/**
 * Published when a server meets a message it cannot decode, with `{ channel, error, action }`:
 * `action` is 'close' when the server closed its channel because of it, or 'ignore'.
 */
export const invalidRequestChannel = diagnosticsChannel.channel('ftl-ipc:rpc:invalid');

/**
 * Published when a handler fails (it throws, rejects, or returns a reply that does not encode),
 * with `{ channel, error, kind, action }`: `action` is 'stop' when serving stops because of it
 * (`stopOnError`), or 'continue'.
 */
export const handlerErrorChannel = diagnosticsChannel.channel('ftl-ipc:rpc:error');

/** What a call's handler gets beside the request. */
export interface CallContext {
  /** The call's transaction id. */
  readonly txid: number;
  /**
   * Fires when the client aborts the call or its timeout passes (the client sends a cancel),
   * when the client goes away, or when serving stops. The reply is then dropped.
   */
  readonly signal: AbortSignal;
  /** When the client gives up (`Date.now()` milliseconds), if it set a timeout. */
  readonly deadline: number | undefined;
}

/** The AbortController is made only for handlers that look at `signal`. */
class HandlerContext implements CallContext {
  readonly txid: number;
  readonly deadline: number | undefined;
  /** Its span while tracing is on. */
  span: CallSpan | undefined;
  aborted = false;
  #controller: AbortController | undefined;
  #reason: unknown;

  constructor(txid: number, deadline: number | undefined) {
    this.txid = txid;
    this.deadline = deadline;
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.aborted) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  abort(reason: IpcError): void {
    if (this.aborted) return;
    this.aborted = true;
    this.#reason = reason;
    this.#controller?.abort(reason);
  }
}

export interface ServeOptions {
  /**
   * Handlers running at once, calls and pushes together. Default: the server end's queue
   * `capacity` (32 by default), twice the call window of a client with the same limits, so all
   * its calls can run and the handlers stay bounded; `1` runs them one at a time, in order.
   * Requests beyond it are held, up to `capacity` more, then the server stops reading and the
   * client feels it.
   */
  concurrency?: number;
  /**
   * What to do with a message that does not decode (its handles are closed either way): 'close'
   * the channel (the default, as a peer that sends garbage cannot be trusted) or 'ignore' it.
   * Either way it is published on `ftl-ipc:rpc:invalid`.
   */
  onInvalid?: 'close' | 'ignore' | ((error: IpcError, message: Message) => 'close' | 'ignore');
  /**
   * Called when a handler fails, after its call (if it is one) was answered with an error reply;
   * serving goes on. An `onError` that throws stops serving with what it threw.
   */
  onError?: (error: unknown, kind: string) => void;
  /**
   * Stop serving at the first handler failure: the channel is closed and `serve` rejects with the
   * error. Default false: only the failing call fails (`REMOTE_ERROR` at the client).
   */
  stopOnError?: boolean;
  /**
   * Error replies carry the handler's error's stack instead of only its message (cut to 256
   * characters either way). Default false, as a stack tells the client about the server's code.
   */
  replyStack?: boolean;
  /** Replies use Channel's strategies; the default 'close' tells a client that stopped reading. */
  replyOnFull?: OnFull;
}

/** Handlers by message kind: calls return their reply, pushes return nothing. */
type AnyHandlers = Record<string, (value: never, context?: CallContext) => unknown>;

interface Job {
  readonly d: MessageDescriptor<unknown>;
  readonly request: Received;
  readonly context: HandlerContext | undefined;
}

/** The server side of a protocol: typed receive, replies, pushes, and a dispatch loop. */
export class RpcServer<In extends Received = Received> extends Peer<In> {
  /**
   * The next request or push, decoded; an invalid one rejects INVALID_MESSAGE with its handles
   * closed. Cancels are skipped: code that serves this way answers every call.
   */
  async recv(): Promise<In> {
    for (;;) {
      const message = await this.channel.recv();
      try {
        const control = readControl(message);
        if (control.cancel === 0) return this.table.decode(control.message);
      } catch (error) {
        discard(message);
        throw error;
      }
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
   * Receives and dispatches until the client closes and the handlers have finished (resolves),
   * or a handler fails with `stopOnError` or an `onError` throws (rejects). Either way the channel is closed after.
   */
  protected async dispatch(handlers: object, options: ServeOptions = {}): Promise<void> {
    try {
      await new Dispatcher(this, this.table, handlers as AnyHandlers, options).run();
    } finally {
      this.close();
    }
  }
}

/** One `serve()`: reads in batches, runs up to `concurrency` handlers, replies as each ends. */
class Dispatcher<In extends Received> {
  readonly #server: RpcServer<In>;
  readonly #table: MessageTable<In>;
  readonly #handlers: AnyHandlers;
  readonly #options: ServeOptions;
  readonly #replyOptions: SendOptions;
  readonly #concurrency: number;
  /** Contexts of calls received and not yet answered, for cancels. */
  readonly #calls = new Map<number, HandlerContext>();
  /** Received, waiting for a free handler slot. */
  #held: Job[] = [];
  #heldHead = 0;
  #active = 0;
  #pulling = false;
  #failure: { error: unknown } | undefined;
  /** Why new calls start aborted: the client went away, or serving stops. */
  #over: IpcError | undefined;
  #wake: (() => void) | undefined;

  constructor(
    server: RpcServer<In>,
    table: MessageTable<In>,
    handlers: AnyHandlers,
    options: ServeOptions,
  ) {
    this.#server = server;
    this.#table = table;
    this.#handlers = handlers;
    this.#options = options;
    this.#replyOptions = { onFull: options.replyOnFull ?? 'close' };
    const concurrency = options.concurrency ?? server.channel.limits.capacity;
    if (!(Number.isInteger(concurrency) && concurrency >= 1))
      throw new IpcError(
        'INVALID_ARGUMENT',
        `concurrency must be a positive integer, got ${String(concurrency)}`,
      );
    this.#concurrency = concurrency;
  }

  get #heldCount(): number {
    return this.#held.length - this.#heldHead;
  }

  async run(): Promise<void> {
    const channel = this.#server.channel;
    const capacity = channel.limits.capacity;
    try {
      for (;;) {
        if (this.#heldCount >= capacity) {
          // Saturated: stop reading, so the client's sends meet a full queue.
          await new Promise<void>((resolve) => (this.#wake = resolve));
          continue;
        }
        let batch: Message[];
        try {
          batch = await channel.recvBatch(capacity - this.#heldCount);
        } catch (error) {
          if (isIpcError(error, 'PEER_CLOSED') || isIpcError(error, 'CLOSED')) break;
          throw error;
        }
        for (let i = 0; i < batch.length; i++) {
          if (!this.#accept(batch[i]!)) {
            for (let j = i + 1; j < batch.length; j++) discard(batch[j]!);
            return;
          }
        }
      }
      this.#throwIfFailed();
      // The client is gone: its calls' handlers are told; its last pushes are still handled.
      this.#end(new IpcError('PEER_CLOSED', 'the client closed its channel'));
      while (this.#active > 0 || this.#heldCount > 0)
        await new Promise<void>((resolve) => (this.#wake = resolve));
      this.#throwIfFailed();
    } finally {
      this.#end(new IpcError('CLOSED', 'serving stopped'));
    }
  }

  #throwIfFailed(): void {
    if (this.#failure !== undefined) throw this.#failure.error;
  }

  #end(reason: IpcError): void {
    this.#over ??= reason;
    for (const context of this.#calls.values()) context.abort(reason);
  }

  /** False when the message was invalid and the channel is closed because of it. */
  #accept(message: Message): boolean {
    const table = this.#table;
    let job: Job;
    try {
      const control = readControl(message);
      if (control.cancel !== 0) {
        const d = table.get(message.type);
        if (d === undefined || !isCall(d))
          throw new IpcError(
            'INVALID_MESSAGE',
            `(message): a cancel for type id ${message.type}, which is not a call this side receives`,
          );
        // A cancel for a call already answered crossed its reply: nothing to do.
        this.#calls
          .get(control.cancel)
          ?.abort(new IpcError('ABORTED', `${d.name} was cancelled by the client`));
        return true;
      }
      const request = table.decode(control.message);
      const d = table.get(message.type)!;
      if (control.timeoutMs !== undefined && !isCall(d))
        throw new IpcError(
          'INVALID_MESSAGE',
          `(message): ${d.name} is a push but carries a deadline`,
        );
      let context: HandlerContext | undefined;
      if (isCall(d)) {
        const deadline =
          control.timeoutMs === undefined ? undefined : Date.now() + control.timeoutMs;
        context = new HandlerContext(request.txid!, deadline);
        if (callTracer !== undefined) context.span = callTracer.server(d.name, control.trace);
        if (this.#over !== undefined) context.abort(this.#over);
      }
      job = { d, request, context };
    } catch (error) {
      discard(message);
      return this.#invalid(error as IpcError, message);
    }
    if (this.#active < this.#concurrency && this.#heldCount === 0) {
      this.#start(job);
    } else {
      this.#held.push(job);
      if (job.context !== undefined) this.#calls.set(job.context.txid, job.context);
    }
    return true;
  }

  #invalid(error: IpcError, message: Message): boolean {
    const onInvalid = this.#options.onInvalid ?? 'close';
    const action = typeof onInvalid === 'function' ? onInvalid(error, message) : onInvalid;
    if (invalidRequestChannel.hasSubscribers)
      invalidRequestChannel.publish({ channel: this.#server.channel, error, action });
    if (action === 'ignore') return true;
    this.#server.close();
    return false;
  }

  #start(job: Job): void {
    this.#active++;
    const context = job.context;
    if (context?.aborted) {
      // Cancelled while it waited for a slot: answered without running, so the client's window frees.
      this.#finish(job, undefined, {
        error: new IpcError('ABORTED', `${job.d.name} was cancelled`),
      });
      return;
    }
    let result: unknown;
    try {
      const handler = this.#handlers[job.request.kind]!;
      const value = job.request.value as never;
      const span = context?.span;
      // No closure unless traced: this is every request's path.
      result =
        span === undefined
          ? handler.call(this.#handlers, value, context)
          : span.run(() => handler.call(this.#handlers, value, context));
    } catch (error) {
      this.#finish(job, undefined, { error });
      return;
    }
    if (typeof (result as { then?: unknown } | null | undefined)?.then === 'function') {
      // Only calls that outlive this turn can be cancelled: a synchronous one is answered now.
      if (context !== undefined) this.#calls.set(context.txid, context);
      (result as PromiseLike<unknown>).then(
        (value) => this.#finish(job, value, undefined),
        (error: unknown) => this.#finish(job, undefined, { error }),
      );
    } else {
      this.#finish(job, result, undefined);
    }
  }

  #finish(job: Job, value: unknown, failed: { error: unknown } | undefined): void {
    this.#active--;
    const { d, request, context } = job;
    let failure = failed;
    if (context !== undefined) {
      if (this.#calls.size > 0 && this.#calls.get(context.txid) === context)
        this.#calls.delete(context.txid);
      // A handler that gave up because it was told to has not failed.
      if (context.aborted) failure = undefined;
      context.span?.end(failed?.error);
      const call = d as CallDescriptor<unknown, unknown>;
      const txid = context.txid;
      const stack = this.#options.replyStack === true;
      let reply =
        failed === undefined ? undefined : encodeErrorReply(call, txid, failed.error, stack);
      if (reply === undefined) {
        try {
          reply = encodeReply(call, txid, value, true);
        } catch (error) {
          failure = { error };
          reply = encodeErrorReply(call, txid, error, stack);
        }
      }
      try {
        this.#server.channel.send(reply, this.#replyOptions);
      } catch (error) {
        // A client that has gone away is not a failure of this server.
        if (!isIpcError(error, 'PEER_CLOSED') && !isIpcError(error, 'CLOSED'))
          failure ??= { error };
      }
    }
    if (failure !== undefined) this.#failed(failure.error, request.kind);
    this.#pull();
  }

  /** A handler failed: its call was answered; serving goes on unless told to stop. */
  #failed(error: unknown, kind: string): void {
    const options = this.#options;
    let stop = options.stopOnError === true ? { error } : undefined;
    if (handlerErrorChannel.hasSubscribers)
      handlerErrorChannel.publish({
        channel: this.#server.channel,
        error,
        kind,
        action: stop === undefined ? 'continue' : 'stop',
      });
    try {
      options.onError?.(error, kind);
    } catch (thrown) {
      stop = { error: thrown };
    }
    if (stop === undefined) return;
    this.#failure ??= stop;
    this.#end(new IpcError('CLOSED', 'serving stopped: a handler failed'));
    this.#server.close();
  }

  /** Starts held jobs while slots are free, then lets the loop go on if it waits. */
  #pull(): void {
    if (this.#pulling) return;
    this.#pulling = true;
    while (this.#active < this.#concurrency && this.#heldCount > 0) {
      const job = this.#held[this.#heldHead]!;
      this.#held[this.#heldHead++] = undefined as unknown as Job;
      this.#start(job);
    }
    if (this.#heldCount === 0) {
      this.#held = [];
      this.#heldHead = 0;
    }
    this.#pulling = false;
    const wake = this.#wake;
    if (wake !== undefined) {
      this.#wake = undefined;
      wake();
    }
  }
}
