import type { Channel, SendOptions, WaitOptions } from '../channel/index.js';
import { checkWaitOptions } from '../channel/wait.js';
import { IpcError } from '../errors.js';
import type { CallDescriptor, MessageDescriptor, MessageTable, Received } from './message.js';
import { type CallOptions, type ClientOptions, RpcClient, untilClosed } from './rpc.js';

/**
 * What a generated client talks to: an {@link RpcClient} on one channel, or a pool that spreads
 * calls over many (src/pool). Pushes from the server arrive through `recv`.
 */
export interface CallRouter<In extends Received = Received> {
  call<Req, Rep>(d: CallDescriptor<Req, Rep>, value: Req, options?: CallOptions): Promise<Rep>;
  send<T>(d: MessageDescriptor<T>, value: T, options?: SendOptions): boolean;
  sendWait<T>(d: MessageDescriptor<T>, value: T, options?: WaitOptions): Promise<void>;
  recv(): Promise<In>;
  close(): void;
}

function isRouter<In extends Received>(target: Channel | CallRouter<In>): target is CallRouter<In> {
  return typeof (target as Partial<CallRouter<In>>).call === 'function';
}

/**
 * The base of generated clients: the same typed methods over a channel (an RpcClient is made on
 * it) or over any other {@link CallRouter}, such as a pool.
 */
export class ProtocolClient<In extends Received = Received> {
  readonly router: CallRouter<In>;
  /** A router's calls get the client's default timeout here; an RpcClient applies its own. */
  readonly #timeoutMs: number | undefined;

  constructor(
    target: Channel | CallRouter<In>,
    table: MessageTable<In>,
    options: ClientOptions = {},
  ) {
    if (isRouter(target)) {
      const invalid = checkWaitOptions(options);
      if (invalid !== undefined) throw invalid;
      this.router = target;
      this.#timeoutMs = options.timeoutMs;
    } else {
      this.router = new RpcClient(target, table, options);
    }
  }

  /** The channel of a client made on one; INVALID_ARGUMENT for one made on a pool. */
  get channel(): Channel {
    if (this.router instanceof RpcClient) return this.router.channel;
    throw new IpcError(
      'INVALID_ARGUMENT',
      'this client calls through a router (a pool), not one channel: it has no channel',
    );
  }

  call<Req, Rep>(d: CallDescriptor<Req, Rep>, value: Req, options?: CallOptions): Promise<Rep> {
    const timeoutMs = this.#timeoutMs;
    if (timeoutMs !== undefined && options?.timeoutMs === undefined)
      return this.router.call(d, value, { ...options, timeoutMs });
    return this.router.call(d, value, options);
  }

  /** Like `Channel.send`: false when dropped by `onFull`, throws BACKPRESSURE without it. */
  send<T>(d: MessageDescriptor<T>, value: T, options?: SendOptions): boolean {
    return this.router.send(d, value, options);
  }

  /** Like `Channel.sendWait`: waits while the peer's queue is full. */
  sendWait<T>(d: MessageDescriptor<T>, value: T, options?: WaitOptions): Promise<void> {
    return this.router.sendWait(d, value, options);
  }

  /** The next push from the server, decoded. Rejects PEER_CLOSED once the server is gone. */
  recv(): Promise<In> {
    return this.router.recv();
  }

  [Symbol.asyncIterator](): AsyncGenerator<In, void, undefined> {
    return untilClosed(() => this.router.recv());
  }

  close(): void {
    this.router.close();
  }
}
