import type { ChannelLimits, HandleState } from '../../channel/endpoint.js';
import type { PipeEndState } from '../../pipe/pipe.js';
import type { Connection } from './connection.js';
import { Link } from './link.js';

/** Most bytes one MSG of a pipe carries: large enough to amortise the header, small enough to batch. */
const PIPE_CHUNK = 64 * 1024;

export function pipeLimits(capacityBytes: number): ChannelLimits {
  return Object.freeze({
    capacity: 0,
    capacityBytes,
    maxMessageBytes: capacityBytes,
    maxHandles: 0,
  });
}

/**
 * A pipe id that sends: it reads the bytes of a consumer state living here and sends them as MSGs
 * within the far side's byte credits. It reads ahead without releasing: the bytes stay counted in
 * the local ring until the far side returns their credit, so the producer here sees the same bound
 * (`capacityBytes` in all, whatever is in flight or buffered over there) as for a local pipe.
 */
export class PipeSender extends Link {
  readonly #state: PipeEndState;
  /** Absolute ring index of the next byte to send; READ trails it by the bytes not yet credited. */
  #cursor: number;
  #unacked = 0;
  #waiting = false;

  constructor(conn: Connection, id: number, state: PipeEndState, sendBytes: number) {
    const limits = pipeLimits(state.ring.capacity);
    super(conn, id, limits, limits, { messages: 0, bytes: sendBytes }, { messages: 0, bytes: 0 });
    this.#state = state;
    this.#cursor = state.ring.readIndex;
  }

  /** Starts sending; deferred so that the sending Channel has released the moved end first. */
  start(): void {
    queueMicrotask(() => {
      this.#state.signals.adopt('consumer');
      this.#pump();
    });
  }

  #pump(): void {
    const ring = this.#state.ring;
    while (!this.sentClose) {
      const from = ring.readFrom(this.#cursor);
      const view = ring.peek(from);
      if (view.byteLength === 0) {
        // The closed flag is set after the last commit: no bytes can follow once it is seen.
        if (this.#state.peerClosed && ring.peek(ring.readFrom(this.#cursor)).byteLength === 0) {
          this.closeLink();
          this.#state.close();
        } else this.#wait();
        return;
      }
      const n = Math.min(view.byteLength, this.sendBytes, PIPE_CHUNK);
      // credit() or outputReady() pumps again.
      if (n === 0 || !this.conn.outputRoom(this, n)) return;
      this.conn.writePipeBytes(this.id, view.subarray(0, n));
      this.#cursor = ring.advance(from, n);
      this.sendBytes -= n;
      this.#unacked += n;
    }
  }

  #wait(): void {
    if (this.#waiting) return;
    this.#waiting = true;
    const ring = this.#state.ring;
    const resume = () => {
      this.#waiting = false;
      this.#pump();
    };
    this.#state.signals
      .wait(
        'consumer',
        () => ring.peek(ring.readFrom(this.#cursor)).byteLength > 0,
        {},
        'pipe link',
      )
      .then(resume, resume);
  }

  override refuse(): string | undefined {
    return `MSG on pipe channel ${this.id}, whose bytes flow the other way`;
  }

  override refuseCredit(messages: number, bytes: number): string | undefined {
    if (messages !== 0 || bytes > this.#unacked) {
      return `credit of ${messages} messages and ${bytes} bytes on pipe channel ${this.id}, which has ${this.#unacked} bytes in flight`;
    }
    return undefined;
  }

  deliver(): boolean {
    // Unreachable: refuse() turns every MSG on this id into a protocol error.
    return false;
  }

  override outputReady(): void {
    this.#pump();
  }

  credit(_messages: number, bytes: number): void {
    this.#unacked -= bytes;
    this.sendBytes += bytes;
    const ring = this.#state.ring;
    for (let left = bytes; left > 0; ) {
      const view = ring.readable();
      const n = Math.min(view.byteLength, left);
      if (n === 0) break;
      ring.commitRead(n);
      left -= n;
    }
    this.#state.signals.notify('producer');
    this.#pump();
  }

  /** The far consumer closed, or the connection is gone: writes here fail with PEER_CLOSED. */
  farClosed(): void {
    this.#state.close();
    this.closeLink();
  }
}

/**
 * A pipe id that receives: it writes the arriving bytes into a producer state living here and
 * grants the far side byte credits as the consumer here frees room, never more than the room.
 */
export class PipeReceiver extends Link {
  readonly #state: PipeEndState;

  constructor(conn: Connection, id: number, state: PipeEndState, grantBytes: number) {
    const limits = pipeLimits(state.ring.capacity);
    super(conn, id, limits, limits, { messages: 0, bytes: 0 }, { messages: 0, bytes: grantBytes });
    this.#state = state;
  }

  start(): void {
    queueMicrotask(() => {
      this.#state.signals.adopt('producer');
      this.#watch();
    });
  }

  /** Grants what the consumer freed, then waits for it to free more (or to close). */
  #watch(): void {
    if (this.sentClose) return;
    const ring = this.#state.ring;
    const room = () => ring.free - this.grantBytes - this.dueBytes;
    if (room() > 0) this.grant(0, room());
    this.#state.signals
      .wait('producer', () => room() > 0, {}, 'pipe link')
      .then(
        () => this.#watch(),
        () => {
          // The consumer closed (PEER_CLOSED), or this side did (CLOSED): either way this id is done.
          this.closeLink();
          this.#state.close();
        },
      );
  }

  override refuse(dataBytes: number, handleCount: number, type: number): string | undefined {
    if (handleCount !== 0 || type !== 0) {
      return `MSG of type ${type} with ${handleCount} handles on pipe channel ${this.id} (pipes carry bytes only)`;
    }
    if (dataBytes > this.grantBytes) {
      return `${dataBytes} bytes on pipe channel ${this.id} exceed the ${this.grantBytes} bytes of credit granted`;
    }
    return undefined;
  }

  override refuseCredit(): string | undefined {
    return `CREDIT on pipe channel ${this.id}, which only receives bytes`;
  }

  deliver(_type: number, data: Uint8Array, _handles: HandleState[]): boolean {
    const state = this.#state;
    // A closed consumer discards; the CLOSE that tells the far side is on its way.
    if (state.peerClosed) return false;
    const ring = state.ring;
    for (let written = 0; written < data.byteLength; ) {
      // Fits by construction (credits never exceed the room); copies never need a skip.
      const view = ring.writable(1) as Uint8Array;
      const n = Math.min(view.byteLength, data.byteLength - written);
      view.set(data.subarray(written, written + n));
      ring.commitWrite(n);
      written += n;
    }
    state.signals.notify('consumer');
    return true;
  }

  credit(): void {
    // Unreachable: refuseCredit() turns every CREDIT on this id into a protocol error.
  }

  /** The far producer closed after its last bytes, or the connection is gone: end of stream here. */
  farClosed(): void {
    this.#state.close();
    this.closeLink();
  }
}
