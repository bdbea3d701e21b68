import { copyBytes } from './copy.js';
import { Deque } from './deque.js';
import {
  type ChannelLimits,
  type Endpoint,
  type EndpointCounters,
  type EndpointEvents,
  type HandleState,
  type RawMessage,
  type Room,
  SEND_FULL,
  SEND_OK,
  SEND_PEER_CLOSED,
  type SendStatus,
} from './endpoint.js';

export function newCounters(): EndpointCounters {
  return {
    sent: 0,
    received: 0,
    sentBytes: 0,
    receivedBytes: 0,
    dropped: 0,
    backpressured: 0,
    discarded: 0,
    highWaterMark: 0,
  };
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

/** What an end hands over when it leaves the thread: see {@link LocalEndpoint.detach}. */
export interface DetachedEnd {
  readonly limits: ChannelLimits;
  readonly counters: EndpointCounters;
  /** Messages queued for this end, oldest first; whoever takes the end must deliver them. */
  readonly queued: RawMessage[];
  readonly peerClosed: boolean;
}

/**
 * Both ends of a channel in one thread: a send is a push onto the peer's queue. When one end
 * leaves the thread ({@link detach}), the other forwards to a transport's endpoint instead.
 */
export class LocalEndpoint implements Endpoint {
  readonly kind = 'channel';
  events: EndpointEvents | undefined;
  readonly limits: ChannelLimits;
  #counters = newCounters();
  #peerClosed = false;
  #peer: LocalEndpoint | undefined;
  /**
   * Set once the peer left the thread. This object stays, because it may be owned by a Channel
   * or travel inside a queued message, where nothing could swap it for another object.
   */
  #remote: Endpoint | undefined;
  #queue = new Deque<RawMessage>();
  #queuedBytes = 0;
  /** Taken by a forwarder with `takeHeld` and not yet released: still counted as queued. */
  #heldMessages = 0;
  #heldBytes = 0;
  #readableArmed = false;
  /** Set on the receiving end when its peer waits for room in this queue... */
  #peerWantsWritable = false;
  /** ...this much of it (see Endpoint.armWritable). */
  #wakeAt: Room | undefined;

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

  get counters(): EndpointCounters {
    return this.#remote?.counters ?? this.#counters;
  }

  get peerClosed(): boolean {
    return this.#remote?.peerClosed ?? this.#peerClosed;
  }

  get queuedMessages(): number {
    return this.#remote?.queuedMessages ?? this.#queue.length;
  }

  get queuedBytes(): number {
    return this.#remote?.queuedBytes ?? this.#queuedBytes;
  }

  get honoursLowWater(): boolean {
    return this.#remote === undefined || this.#remote.honoursLowWater === true;
  }

  /** @internal The transport endpoint this end forwards to since its peer left the thread. */
  get remote(): Endpoint | undefined {
    return this.#remote;
  }

  /**
   * @internal Gives the forwarding target to a transport that moves it out of the thread; this
   * object is dead afterwards.
   */
  takeRemote(): Endpoint | undefined {
    const remote = this.#remote;
    this.#remote = undefined;
    this.events = undefined;
    return remote;
  }

  /**
   * Takes this end out of the thread so a transport can carry it away; this object is dead
   * afterwards. `connect` gets what both ends queued (`peerSide` undefined when the peer
   * closed) and returns the transport's stand-in for the peer's side, which must deliver
   * `peerSide.queued` first; the peer forwards every call to it from then on. When `connect`
   * throws, nothing changed: both queues hold what the arrays hold then (`connect` may have
   * replaced messages it took back). An end that already forwards has nothing local left: use
   * {@link takeRemote} for it.
   */
  detach(
    connect: (own: DetachedEnd, peerSide: DetachedEnd | undefined) => Endpoint | undefined,
  ): void {
    const peer = this.#peer;
    const own: DetachedEnd = {
      limits: this.limits,
      counters: this.#counters,
      queued: this.#queue.drain(),
      peerClosed: this.#peerClosed,
    };
    const peerSide: DetachedEnd | undefined =
      peer === undefined
        ? undefined
        : {
            limits: peer.limits,
            counters: peer.#counters,
            queued: peer.#queue.drain(),
            peerClosed: false,
          };
    let remote: Endpoint | undefined;
    try {
      remote = connect(own, peerSide);
    } catch (error) {
      for (const m of own.queued) this.#queue.push(m);
      if (peer !== undefined) for (const m of peerSide?.queued ?? []) peer.#queue.push(m);
      throw error;
    }
    this.#peer = undefined;
    this.#queuedBytes = 0;
    this.events = undefined;
    if (peer !== undefined && remote !== undefined) {
      peer.#peer = undefined;
      peer.#queuedBytes = 0;
      peer.#forwardTo(remote);
      if (this.#peerWantsWritable) remote.armWritable(this.#wakeAt);
    }
  }

  /**
   * Undoes a {@link detach} that a failed send had made: this end forwards to `remote`, the
   * side that was to travel, adopted back in this thread, and its Channel hears of it again.
   */
  resume(remote: Endpoint, events: EndpointEvents | undefined): void {
    this.events = events;
    this.#forwardTo(remote);
  }

  #forwardTo(remote: Endpoint): void {
    this.#remote = remote;
    remote.events = {
      readable: () => this.events?.readable(),
      writable: () => this.events?.writable(),
      peerClosed: () => this.events?.peerClosed(),
    };
    if (this.#readableArmed) remote.armReadable();
  }

  canSend(bytes: number): SendStatus {
    if (this.#remote !== undefined) return this.#remote.canSend(bytes);
    const peer = this.#peer;
    if (peer === undefined) return SEND_PEER_CLOSED;
    return peer.#queue.length + peer.#heldMessages < peer.limits.capacity &&
      peer.#queuedBytes + peer.#heldBytes + bytes <= peer.limits.capacityBytes
      ? SEND_OK
      : SEND_FULL;
  }

  room(): { messages: number; bytes: number } {
    if (this.#remote !== undefined) return this.#remote.room();
    const peer = this.#peer;
    if (peer === undefined) return { messages: 0, bytes: 0 };
    return {
      messages: peer.limits.capacity - peer.#queue.length - peer.#heldMessages,
      bytes: peer.limits.capacityBytes - peer.#queuedBytes - peer.#heldBytes,
    };
  }

  trySend(type: number, data: Uint8Array, handles: readonly HandleState[]): SendStatus {
    if (this.#remote !== undefined) return this.#remote.trySend(type, data, handles);
    const status = this.canSend(data.byteLength);
    if (status !== SEND_OK) return status;
    const peer = this.#peer as LocalEndpoint;
    const copy = copyBytes(data);
    peer.#queue.push({ type, data: copy, handles });
    peer.#queuedBytes += copy.byteLength;
    if (peer.#queue.length > peer.#counters.highWaterMark) {
      peer.#counters.highWaterMark = peer.#queue.length;
    }
    if (peer.#readableArmed) {
      peer.#readableArmed = false;
      peer.events?.readable();
    }
    return SEND_OK;
  }

  take(lend?: boolean): RawMessage | undefined {
    if (this.#remote !== undefined) return this.#remote.take(lend);
    const message = this.#queue.shift();
    if (message === undefined) return undefined;
    this.#queuedBytes -= message.data.byteLength;
    this.#wakeWriter();
    return message;
  }

  takeHeld(): RawMessage | undefined {
    if (this.#remote !== undefined) return this.#remote.takeHeld();
    const message = this.#queue.shift();
    if (message === undefined) return undefined;
    this.#queuedBytes -= message.data.byteLength;
    this.#heldMessages++;
    this.#heldBytes += message.data.byteLength;
    return message;
  }

  release(messages: number, bytes: number): void {
    if (this.#remote !== undefined) {
      this.#remote.release(messages, bytes);
      return;
    }
    this.#heldMessages -= messages;
    this.#heldBytes -= bytes;
    this.#wakeWriter();
  }

  #wakeWriter(): void {
    if (!this.#peerWantsWritable) return;
    const at = this.#wakeAt;
    if (
      at !== undefined &&
      (this.limits.capacity - this.#queue.length - this.#heldMessages < at.messages ||
        this.limits.capacityBytes - this.#queuedBytes - this.#heldBytes < at.bytes)
    ) {
      return;
    }
    this.#peerWantsWritable = false;
    this.#peer?.events?.writable();
  }

  armReadable(): void {
    if (this.#remote !== undefined) this.#remote.armReadable();
    else this.#readableArmed = true;
  }

  armWritable(lowWater?: Room): void {
    if (this.#remote !== undefined) this.#remote.armWritable(lowWater);
    else if (this.#peer !== undefined) {
      this.#peer.#peerWantsWritable = true;
      this.#peer.#wakeAt = lowWater;
    }
  }

  disarmWritable(): void {
    this.#remote?.disarmWritable?.();
  }

  deferSends(): void {
    this.#remote?.deferSends?.();
  }

  flushSends(): void {
    this.#remote?.flushSends?.();
  }

  isPeer(other: HandleState): boolean {
    if (this.#remote !== undefined) {
      return this.#remote.isPeer(other instanceof LocalEndpoint ? (other.#remote ?? other) : other);
    }
    return other === this.#peer;
  }

  close(): void {
    const remote = this.#remote;
    if (remote !== undefined) {
      // Kept: the closed remote still answers for the final stats.
      this.events = undefined;
      remote.close();
      return;
    }
    const peer = this.#peer;
    this.#peer = undefined;
    this.events = undefined;
    discardQueue(this.#queue, this.#counters);
    this.#queuedBytes = 0;
    this.#heldMessages = 0;
    this.#heldBytes = 0;
    if (peer !== undefined) {
      peer.#peer = undefined;
      peer.#peerClosed = true;
      peer.#peerWantsWritable = false;
      peer.events?.peerClosed();
    }
  }
}
