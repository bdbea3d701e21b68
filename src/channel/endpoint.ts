/**
 * The seam between a Channel (the public object, its waiters and strategies) and whatever carries
 * its messages: a peer object in the same thread, a shared-memory ring to another thread, or a
 * socket. A transport implements {@link Endpoint}; everything above it is shared.
 */

/** The limits of one endpoint's receive queue and of the messages sent into it. */
export interface ChannelLimits {
  /** Messages the receive queue holds. */
  readonly capacity: number;
  /** Bytes of message data the receive queue holds. */
  readonly capacityBytes: number;
  /** Largest `data` a single message may carry. */
  readonly maxMessageBytes: number;
  /** Most handles a single message may carry. */
  readonly maxHandles: number;
}

/** Internal state behind a handle (a channel endpoint, later a pipe end) while it travels. */
export interface HandleState {
  /** Which public class adopts this state on receipt; see `registerHandleKind`. */
  readonly kind: string;
  /** Releases the resource: the far side sees it closed. Idempotent. */
  close(): void;
}

export interface RawMessage {
  readonly type: number;
  readonly data: Uint8Array;
  readonly handles: readonly HandleState[];
}

/** Room in a queue, or an amount of it. */
export interface Room {
  readonly messages: number;
  readonly bytes: number;
}

export const SEND_OK = 0;
export const SEND_FULL = 1;
export const SEND_PEER_CLOSED = 2;
export type SendStatus = typeof SEND_OK | typeof SEND_FULL | typeof SEND_PEER_CLOSED;

/** Callbacks from an endpoint to the Channel that currently owns it. */
export interface EndpointEvents {
  /** A message arrived after `armReadable()`. One-shot. */
  readable(): void;
  /** The peer queue gained room after `armWritable()`. One-shot. */
  writable(): void;
  /** The peer closed. Messages already queued stay readable. */
  peerClosed(): void;
}

/** Counters that move with the endpoint when it is sent as a handle. */
export interface EndpointCounters {
  sent: number;
  received: number;
  /** Data bytes of the messages counted in `sent` and `received`. */
  sentBytes: number;
  receivedBytes: number;
  dropped: number;
  backpressured: number;
  /** Messages still queued when this endpoint closed: destroyed unread, handles closed. */
  discarded: number;
  /** Most messages ever queued at once in this endpoint's receive queue. */
  highWaterMark: number;
}

export interface Endpoint extends HandleState {
  readonly kind: 'channel';
  events: EndpointEvents | undefined;
  readonly limits: ChannelLimits;
  readonly counters: EndpointCounters;
  /** True once the peer has closed (the local queue may still hold messages). */
  readonly peerClosed: boolean;
  readonly queuedMessages: number;
  readonly queuedBytes: number;
  /** Would a message with `bytes` of data fit in the peer's queue right now? */
  canSend(bytes: number): SendStatus;
  /**
   * Appends a message to the peer's queue, or reports why not. On SEND_OK the endpoint has taken
   * the handle states; it never keeps `data` (the caller may reuse the buffer at once).
   */
  trySend(type: number, data: Uint8Array, handles: readonly HandleState[]): SendStatus;
  /**
   * Takes the oldest message of the receive queue, as an object nobody else holds (the Channel
   * turns it into the `Message` it returns). With `lend`, the object and its `data` may instead
   * be ones the transport reuses at its next take: for a receiver that copies what it keeps
   * (`tryRecvView`), so that a message costs no allocation.
   */
  take(lend?: boolean): RawMessage | undefined;
  /**
   * Room in the peer's queue now: what `trySend` would accept, `{ 0, 0 }` once the peer closed.
   * A forwarder (a socket bridge) grants exactly this to the far side, so a message it relays
   * always fits and the bound holds across hops without a buffer of its own.
   */
  room(): { messages: number; bytes: number };
  /**
   * Takes the oldest message but keeps counting it against this queue's limits until
   * `release`: a forwarder holds what it passed on until the next hop reports it consumed, so
   * the original sender never has more in flight than this queue grants.
   */
  takeHeld(): RawMessage | undefined;
  /** Stops counting messages taken with `takeHeld`; may wake a waiting sender. */
  release(messages: number, bytes: number): void;
  armReadable(): void;
  /**
   * Calls `events.writable` once the peer's queue gains room; when `honoursLowWater`, only once
   * it has `lowWater` of room (the Channel's low-water mark), if given.
   */
  armWritable(lowWater?: Room): void;
  /**
   * True when `armWritable` waits for its `lowWater`: waiting senders then wake once per run of
   * sends rather than once per message taken, and the Channel keeps a grace timer so that a
   * receiver stopping short of the mark cannot deadlock them. Absent: wakes on any room.
   */
  readonly honoursLowWater?: boolean;
  /**
   * Nobody waits for room any more (the last waiter timed out or was aborted). A transport that
   * watches for room from another thread may stop, and release what keeps its thread alive.
   */
  disarmWritable?(): void;
  /**
   * Sends from now until `flushSends` may reach the peer together at `flushSends` (a batch): a
   * transport whose peer polls shared memory publishes once per batch instead of per message.
   */
  deferSends?(): void;
  /** Makes deferred sends visible to the peer, waking it if it sleeps. */
  flushSends?(): void;
  /** True when `other` is this endpoint's peer: sending it here would make a cycle. */
  isPeer(other: HandleState): boolean;
}
