import type { Socket } from 'node:net';

/** What a carrier tells the protocol engine. */
export interface CarrierSink {
  /** The next piece of the peer's byte stream, in order; pieces may split frames anywhere. */
  data(chunk: Buffer): void;
  /** The carrier failed; `closed` follows. */
  error(err: Error): void;
  /** Nothing more will arrive or leave. */
  closed(): void;
}

/**
 * An ordered, reliable byte stream to one peer, as the protocol engine needs it: a socket, or
 * a pair of NATS subjects. Everything above it (framing, handshake, credits, handles, pipes,
 * budgets, heartbeats) is the engine's, so it is written once for every carrier.
 */
export interface Carrier {
  /** What carries the stream ('socket', 'nats'), for error messages. */
  readonly kind: string;
  /** Who is at the other end, for error messages. */
  readonly remote: string;
  /** Output handed to the carrier and not yet taken by the medium (the kernel, a NATS server). */
  readonly pendingBytes: number;
  /** Starts delivering to `sink`; called once, by the engine's constructor. */
  start(sink: CarrierSink): void;
  /** Queues `buf` (the carrier may keep it); `done` runs once the medium took it. */
  write(buf: Buffer, done: () => void): void;
  /** Ends gracefully, after the output already written. */
  end(): void;
  /** Ends now. */
  destroy(): void;
}

/** A connected `net.Socket` (Unix, TCP, TLS or a socketpair) as a carrier. */
export class SocketCarrier implements Carrier {
  readonly kind = 'socket';
  readonly #socket: Socket;

  constructor(socket: Socket) {
    this.#socket = socket;
  }

  get remote(): string {
    const s = this.#socket;
    return s.remoteAddress === undefined ? 'unix socket' : `${s.remoteAddress}:${s.remotePort}`;
  }

  get pendingBytes(): number {
    return this.#socket.writableLength;
  }

  start(sink: CarrierSink): void {
    const s = this.#socket;
    s.setNoDelay?.(true);
    s.on('data', (chunk: Buffer) => sink.data(chunk));
    s.on('error', (err) => sink.error(err));
    s.on('close', () => sink.closed());
  }

  write(buf: Buffer, done: () => void): void {
    if (!this.#socket.destroyed) this.#socket.write(buf, done);
  }

  end(): void {
    this.#socket.end();
  }

  destroy(): void {
    this.#socket.destroy();
  }
}
