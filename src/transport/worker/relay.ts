/**
 * Carries an endpoint of another transport (a socket's, NATS's) into worker threads: the
 * thread that holds it keeps it, with one side of a new shared-memory pair, and passes messages
 * between the two; the other side of the pair is what travels. See docs/worker.md.
 */
import { Deque } from '../../channel/deque.js';
import {
  type Endpoint,
  type RawMessage,
  SEND_OK,
  SEND_PEER_CLOSED,
} from '../../channel/endpoint.js';
import { closeHandles } from '../../channel/local.js';
import { diagnostics } from '../../diagnostics.js';

/** Messages from one endpoint into the other. */
class Lane {
  readonly from: Endpoint;
  readonly to: Endpoint;
  /** Taken from `from` (and still counted there) while `to` has no room for it. */
  pending: RawMessage | undefined;
  /** Data bytes of each message passed on and still counted in `from`, oldest first. */
  readonly held = new Deque<number>();

  constructor(from: Endpoint, to: Endpoint) {
    this.from = from;
    this.to = to;
  }
}

/**
 * Joins two endpoints of this thread, each the near end of a pair whose far end is elsewhere,
 * so that the two far ends talk as one pair. It has no queue of its own: a message it passes on
 * stays counted in the queue it came from (`takeHeld`) until the next queue reports it read, so
 * a sender at either far end meets BACKPRESSURE after exactly the capacity of unread messages
 * it would meet on a direct pair, and the handles in a message move on with it.
 *
 * Closing: once one near end's peer has closed and everything it sent went on, both near ends
 * close, so the other far end reads what was sent and then sees PEER_CLOSED. A message the
 * relay cannot pass on (shared memory ran out, a handle that cannot move) closes both too:
 * dropping it would lose a message its sender was told had room.
 */
export class Relay {
  readonly #ab: Lane;
  readonly #ba: Lane;
  #closed = false;

  constructor(a: Endpoint, b: Endpoint) {
    const ab = new Lane(a, b);
    const ba = new Lane(b, a);
    this.#ab = ab;
    this.#ba = ba;
    a.events = {
      readable: () => this.#pump(ab),
      writable: () => this.#pump(ba),
      peerClosed: () => this.#run(),
    };
    b.events = {
      readable: () => this.#pump(ba),
      writable: () => this.#pump(ab),
      peerClosed: () => this.#run(),
    };
    this.#run();
  }

  #run(): void {
    this.#pump(this.#ab);
    this.#pump(this.#ba);
  }

  #pump(lane: Lane): void {
    if (this.#closed) return;
    const { from, to } = lane;
    this.#settle(lane);
    for (;;) {
      // Nothing more can go on; the other lane passes on what `to` still holds, then closes.
      if (to.peerClosed) {
        if (lane.pending !== undefined) closeHandles(lane.pending);
        lane.pending = undefined;
        return;
      }
      const message = lane.pending ?? from.takeHeld();
      if (message === undefined) {
        if (from.peerClosed) this.#close(to, from);
        else from.armReadable();
        break;
      }
      const status = to.canSend(message.data.byteLength);
      lane.pending = message;
      if (status === SEND_PEER_CLOSED) continue;
      if (status !== SEND_OK) break;
      try {
        to.trySend(message.type, message.data, message.handles);
      } catch (error) {
        this.#fail(error);
        return;
      }
      lane.pending = undefined;
      lane.held.push(message.data.byteLength);
    }
    // Room for the pending message, or progress that lets `from` count fewer as held.
    if (lane.pending !== undefined || lane.held.length > 0) to.armWritable();
  }

  /**
   * Stops counting in `from` the messages that `to`'s peer has read. Its queue is first in,
   * first out, and what it held before the relay's messages is read first: of the messages
   * unread there, the relay's are the newest.
   */
  #settle(lane: Lane): void {
    const held = lane.held;
    if (held.length === 0 || lane.to.peerClosed) return;
    const unread = lane.to.limits.capacity - lane.to.room().messages;
    const read = held.length - Math.min(held.length, Math.max(unread, 0));
    if (read === 0) return;
    let bytes = 0;
    for (let i = 0; i < read; i++) bytes += held.shift() as number;
    lane.from.release(read, bytes);
  }

  /** Everything `from` will ever send went on to `to`: close `to` after it, then `from`. */
  #close(to: Endpoint, from: Endpoint): void {
    this.#closed = true;
    for (const lane of [this.#ab, this.#ba]) {
      if (lane.pending !== undefined) closeHandles(lane.pending);
      lane.pending = undefined;
    }
    to.close();
    from.close();
  }

  #fail(error: unknown): void {
    const { from, to } = this.#ab;
    if (diagnostics.relayError.hasSubscribers) diagnostics.relayError.publish({ error });
    this.#close(to, from);
  }
}
