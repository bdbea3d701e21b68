import { copyBytes } from './copy.js';
import { Deque } from './deque.js';
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
} from './endpoint.js';

export function newCounters(): EndpointCounters {
  return { sent: 0, received: 0, dropped: 0, backpressured: 0, discarded: 0, highWaterMark: 0 };
}

/** Closes every handle a message carries: used when a message dies unread, so nothing leaks. */
export function closeHandles(message: RawMessage): void {
  for (const handle of message.handles) handle.close();
}

/** Destroys every message of a closing endpoint's queue, closing their handles; counts them. */
export function discardQueue(queue: Deque<RawMessage>, counters: EndpointCounters): void {
  for (let m = queue.shift(); m !== undefined; m = queue.shift()) {
    counters.discarded++;
    closeHandles(m);
  }
}

/** Both ends of a channel in one thread: a send is a push onto the peer's queue. */
export class LocalEndpoint implements Endpoint {
  readonly kind = 'channel';
  events: EndpointEvents | undefined;
  readonly counters = newCounters();
  readonly limits: ChannelLimits;
  peerClosed = false;
  #peer: LocalEndpoint | undefined;
  #queue = new Deque<RawMessage>();
  #queuedBytes = 0;
  /** Taken by a forwarder with `takeHeld` and not yet released: still counted as queued. */
  #heldMessages = 0;
  #heldBytes = 0;
  #readableArmed = false;
  /** Set on the receiving end when its peer waits for room in this queue. */
  #peerWantsWritable = false;

  private constructor(limits: ChannelLimits) {
    this.limits = limits;
  }

  static pair(limits: ChannelLimits): [LocalEndpoint, LocalEndpoint] {
    const a = new LocalEndpoint(limits);
    const b = new LocalEndpoint(limits);
    a.#peer = b;
    b.#peer = a;
    return [a, b];
  }

  get queuedMessages(): number {
    return this.#queue.length;
  }

  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  canSend(bytes: number): SendStatus {
    const peer = this.#peer;
    if (peer === undefined) return SEND_PEER_CLOSED;
    return peer.#queue.length + peer.#heldMessages < peer.limits.capacity &&
      peer.#queuedBytes + peer.#heldBytes + bytes <= peer.limits.capacityBytes
      ? SEND_OK
      : SEND_FULL;
  }

  room(): { messages: number; bytes: number } {
    const peer = this.#peer;
    if (peer === undefined) return { messages: 0, bytes: 0 };
    return {
      messages: peer.limits.capacity - peer.#queue.length - peer.#heldMessages,
      bytes: peer.limits.capacityBytes - peer.#queuedBytes - peer.#heldBytes,
    };
  }

  trySend(type: number, data: Uint8Array, handles: readonly HandleState[]): SendStatus {
    const status = this.canSend(data.byteLength);
    if (status !== SEND_OK) return status;
    const peer = this.#peer as LocalEndpoint;
    const copy = copyBytes(data);
    peer.#queue.push({ type, data: copy, handles });
    peer.#queuedBytes += copy.byteLength;
    if (peer.#queue.length > peer.counters.highWaterMark) {
      peer.counters.highWaterMark = peer.#queue.length;
    }
    if (peer.#readableArmed) {
      peer.#readableArmed = false;
      peer.events?.readable();
    }
    return SEND_OK;
  }

  take(): RawMessage | undefined {
    const message = this.#queue.shift();
    if (message === undefined) return undefined;
    this.#queuedBytes -= message.data.byteLength;
    this.#wakeWriter();
    return message;
  }

  takeHeld(): RawMessage | undefined {
    const message = this.#queue.shift();
    if (message === undefined) return undefined;
    this.#queuedBytes -= message.data.byteLength;
    this.#heldMessages++;
    this.#heldBytes += message.data.byteLength;
    return message;
  }

  release(messages: number, bytes: number): void {
    this.#heldMessages -= messages;
    this.#heldBytes -= bytes;
    this.#wakeWriter();
  }

  #wakeWriter(): void {
    if (this.#peerWantsWritable) {
      this.#peerWantsWritable = false;
      this.#peer?.events?.writable();
    }
  }

  armReadable(): void {
    this.#readableArmed = true;
  }

  armWritable(): void {
    if (this.#peer !== undefined) this.#peer.#peerWantsWritable = true;
  }

  isPeer(other: HandleState): boolean {
    return other === this.#peer;
  }

  close(): void {
    const peer = this.#peer;
    this.#peer = undefined;
    this.events = undefined;
    discardQueue(this.#queue, this.counters);
    this.#queuedBytes = 0;
    this.#heldMessages = 0;
    this.#heldBytes = 0;
    if (peer !== undefined) {
      peer.#peer = undefined;
      peer.peerClosed = true;
      peer.#peerWantsWritable = false;
      peer.events?.peerClosed();
    }
  }
}
