import {
  type Endpoint,
  type HandleState,
  type RawMessage,
  SEND_OK,
} from '../../channel/endpoint.js';
import { closeHandles } from '../../channel/local.js';
import type { Connection } from './connection.js';
import { SocketEndpoint } from './endpoint.js';
import { Link } from './link.js';
import { forgetOrigin, registerOrigin } from './origin.js';

/**
 * Stands in for an endpoint that was sent through this connection while its peer stays behind
 * (in this process, or across another connection). It relays both ways without a queue of its
 * own: what it passes on stays counted in the inner endpoint (`takeHeld`) until the far side
 * returns the credit, and it grants the far side exactly the room in the inner endpoint's peer.
 * So the sender at either end sees the same bound as if the pair were local.
 */
export class Bridge extends Link {
  readonly inner: Endpoint;
  /** The descriptor's origin: the inner end's own when it came through a socket, else a new one. */
  readonly origin: number;
  readonly #registered: boolean;
  /** Taken (held) but waiting for byte credits or output room. */
  #pending: RawMessage | undefined;

  constructor(conn: Connection, id: number, inner: Endpoint) {
    const full = { messages: inner.limits.capacity, bytes: inner.limits.capacityBytes };
    super(conn, id, inner.limits, inner.limits, full, inner.room());
    this.inner = inner;
    const passedOn = inner instanceof SocketEndpoint ? inner.origin : 0;
    this.#registered = passedOn === 0;
    this.origin = this.#registered ? registerOrigin(inner) : passedOn;
    inner.events = {
      readable: () => this.pump(),
      writable: () => this.#regrant(),
      peerClosed: () => this.pump(),
    };
  }

  /** Starts relaying; called once the frame that announces this id is written. */
  start(): void {
    this.pump();
    this.#regrant();
  }

  pump(): void {
    const inner = this.inner;
    while (!this.sentClose) {
      const message = this.#pending ?? inner.takeHeld();
      if (message === undefined) {
        if (inner.peerClosed) this.#finish();
        else inner.armReadable();
        return;
      }
      const bytes = message.data.byteLength;
      if (this.sendMessages < 1 || this.sendBytes < bytes || !this.conn.outputRoom(this, bytes)) {
        this.#pending = message;
        return;
      }
      this.#pending = undefined;
      this.sendMessages--;
      this.sendBytes -= bytes;
      this.conn.writeMessage(this.id, message.type, message.data, message.handles);
    }
  }

  /** Grants the far side whatever room the inner endpoint's peer gained. */
  #regrant(): void {
    const inner = this.inner;
    if (this.sentClose || inner.peerClosed) return;
    const room = inner.room();
    const messages = room.messages - this.grantMessages - this.dueMessages;
    const bytes = room.bytes - this.grantBytes - this.dueBytes;
    if (messages > 0 || bytes > 0) this.grant(Math.max(messages, 0), Math.max(bytes, 0));
    inner.armWritable();
  }

  /** The inner endpoint's peer closed and everything it sent went out: close this id. */
  #finish(): void {
    this.inner.close();
    this.#closeBridge();
  }

  #closeBridge(): void {
    if (this.#registered && !this.sentClose) forgetOrigin(this.origin);
    this.closeLink();
  }

  deliver(type: number, data: Uint8Array, handles: HandleState[]): boolean {
    // Fits by construction (the grant never exceeds the room); fails only if the peer closed.
    const inner = this.inner;
    const status =
      inner instanceof SocketEndpoint
        ? inner.relay(type, data, handles)
        : inner.trySend(type, data, handles);
    if (status === SEND_OK) return true;
    closeHandles({ type, data, handles });
    return false;
  }

  override outputReady(): void {
    this.pump();
  }

  credit(messages: number, bytes: number): void {
    this.sendMessages += messages;
    this.sendBytes += bytes;
    this.inner.release(messages, bytes);
    this.pump();
  }

  farClosed(): void {
    if (this.#pending !== undefined) closeHandles(this.#pending);
    this.#pending = undefined;
    this.inner.close();
    this.#closeBridge();
  }
}
