import { Deque } from '../../channel/deque.js';
import {
  type ChannelLimits,
  type Endpoint,
  type EndpointCounters,
  type EndpointEvents,
  type HandleState,
  type RawMessage,
  SEND_FULL,
  SEND_OK,
  SEND_PEER_CLOSED,
  type SendStatus,
} from '../../channel/endpoint.js';
import { discardQueue, newCounters } from '../../channel/local.js';
import type { Connection } from './connection.js';
import { Link } from './link.js';
import { originEndpoint } from './origin.js';

/** The endpoint in this process that `state` leads to through sockets, or `state` itself. */
function destination(state: HandleState): HandleState {
  return state instanceof SocketEndpoint ? (originEndpoint(state.origin) ?? state) : state;
}

/**
 * A channel endpoint whose peer is across a socket. Its receive queue is bounded by the credits
 * it granted; its sends spend the credits the far side granted, so `trySend` answers at once.
 */
export class SocketEndpoint extends Link implements Endpoint {
  readonly kind = 'channel';
  events: EndpointEvents | undefined;
  readonly counters: EndpointCounters;
  /** What the descriptor that opened this id named as its destination (0: none, or the root). */
  readonly origin: number;
  peerClosed = false;
  /** MSGs sent on this id: the far side's CLOSE says how many of them it accepted. */
  #sentHere = 0;
  #queue = new Deque<RawMessage>();
  #queuedBytes = 0;
  #readableArmed = false;
  #writableArmed = false;

  constructor(
    conn: Connection,
    id: number,
    sendLimits: ChannelLimits,
    recvLimits: ChannelLimits,
    send: { messages: number; bytes: number },
    origin = 0,
    counters = newCounters(),
  ) {
    super(conn, id, sendLimits, recvLimits, send, {
      messages: recvLimits.capacity,
      bytes: recvLimits.capacityBytes,
    });
    this.origin = origin;
    this.counters = counters;
  }

  get limits(): ChannelLimits {
    return this.sendLimits;
  }

  get queuedMessages(): number {
    return this.#queue.length;
  }

  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  canSend(bytes: number): SendStatus {
    const status = this.#credited(bytes);
    // Credits say the far queue has room; the output budget says the socket is draining.
    if (status !== SEND_OK || this.conn.outputRoom(this, bytes)) return status;
    return SEND_FULL;
  }

  #credited(bytes: number): SendStatus {
    if (this.peerClosed) return SEND_PEER_CLOSED;
    return this.sendMessages < 1 || this.sendBytes < bytes ? SEND_FULL : SEND_OK;
  }

  trySend(type: number, data: Uint8Array, handles: readonly HandleState[]): SendStatus {
    const status = this.canSend(data.byteLength);
    return status === SEND_OK ? this.#send(type, data, handles) : status;
  }

  /**
   * Sends what a bridge passes on from another connection. Its sender spent credits for it
   * there, which this end's credits back, so it is sent whatever the output budget says:
   * refusing it would lose a message its sender was told had room.
   */
  relay(type: number, data: Uint8Array, handles: readonly HandleState[]): SendStatus {
    const status = this.#credited(data.byteLength);
    return status === SEND_OK ? this.#send(type, data, handles) : status;
  }

  #send(type: number, data: Uint8Array, handles: readonly HandleState[]): SendStatus {
    this.conn.writeMessage(this.id, type, data, handles);
    this.#sentHere++;
    this.sendMessages--;
    this.sendBytes -= data.byteLength;
    return SEND_OK;
  }

  room(): { messages: number; bytes: number } {
    return this.peerClosed
      ? { messages: 0, bytes: 0 }
      : { messages: this.sendMessages, bytes: this.sendBytes };
  }

  take(): RawMessage | undefined {
    const message = this.#queue.shift();
    if (message === undefined) return undefined;
    this.#queuedBytes -= message.data.byteLength;
    if (!this.sentClose) this.grant(1, message.data.byteLength);
    return message;
  }

  takeHeld(): RawMessage | undefined {
    const message = this.#queue.shift();
    if (message !== undefined) this.#queuedBytes -= message.data.byteLength;
    return message;
  }

  release(messages: number, bytes: number): void {
    if (!this.sentClose) this.grant(messages, bytes);
  }

  armReadable(): void {
    this.#readableArmed = true;
  }

  armWritable(): void {
    this.#writableArmed = true;
  }

  /** True when `other` is, through sockets, the endpoint this one leads to or that one's peer. */
  isPeer(other: HandleState): boolean {
    const here = destination(this);
    if (here === this) return false;
    const there = destination(other);
    return there === here || (here as Endpoint).isPeer(there);
  }

  /** Sends the far side dropped after its CLOSE are not `sent`: they count as `dropped`. */
  override closedAfter(accepted: number): string | undefined {
    const lost = (this.#sentHere - accepted) % 2 ** 32;
    if (lost < 0 || lost > this.#sentHere) {
      return `CLOSE on channel ${this.id} says ${accepted} messages were accepted of the ${this.#sentHere} sent`;
    }
    this.counters.sent -= lost;
    this.counters.dropped += lost;
    return undefined;
  }

  override outputReady(): void {
    if (!this.#writableArmed) return;
    this.#writableArmed = false;
    this.events?.writable();
  }

  close(): void {
    this.events = undefined;
    discardQueue(this.#queue, this.counters);
    this.#queuedBytes = 0;
    this.closeLink();
  }

  deliver(type: number, data: Uint8Array, handles: HandleState[]): boolean {
    this.#queue.push({ type, data, handles });
    this.#queuedBytes += data.byteLength;
    if (this.#queue.length > this.counters.highWaterMark) {
      this.counters.highWaterMark = this.#queue.length;
    }
    if (this.#readableArmed) {
      this.#readableArmed = false;
      this.events?.readable();
    }
    return true;
  }

  credit(messages: number, bytes: number): void {
    this.sendMessages += messages;
    this.sendBytes += bytes;
    if (this.#writableArmed) {
      this.#writableArmed = false;
      this.events?.writable();
    }
  }

  farClosed(): void {
    if (this.peerClosed) return;
    this.peerClosed = true;
    this.#writableArmed = false;
    this.events?.peerClosed();
  }
}
