import type { OnReadOpts, Socket } from 'node:net';

/** What a carrier tells the protocol engine. */
export interface CarrierSink {
  /**
   * The next piece of the peer's byte stream, in order; pieces may split frames anywhere.
   * `room` more bytes after `chunk` in its memory are the engine's to keep an incomplete frame
   * in (it asks for the rest there with `readTarget`). Returns whether the engine still uses
   * `chunk`'s memory (a message's view, an incomplete frame): then it must not be reused.
   */
  data(chunk: Buffer, room: number): boolean;
  /** Where the engine wants the next bytes: the rest of a frame it awaits, when that is large. */
  readTarget(): Buffer | undefined;
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
  /**
   * With a shared secret, once both nonces are known: a carrier that protects what follows the
   * handshake (NATS) derives its keys here and returns what the AUTH frames must also cover.
   */
  bind?(secret: Buffer, clientNonce: Buffer, serverNonce: Buffer): Buffer;
}

/** Room for two frames of a 64 KiB message, so that a read can hold one whole. */
const SCRATCH_BYTES = 2 * (64 * 1024 + 16);

/**
 * `net`'s `onread` for a socket this side creates (`net.connect`, `new net.Socket`). Reads land
 * in one reused buffer, not a fresh one per read for the GC to collect, or, for the rest of a
 * large frame, straight in the frame's own memory: a large message is not copied once more.
 */
export class DirectReads {
  #sink: CarrierSink | undefined;
  #scratch = Buffer.allocUnsafeSlow(SCRATCH_BYTES);
  /** What arrived before the engine started, copied. */
  #early: Buffer[] = [];
  readonly onread = {
    buffer: (): Buffer => this.#sink?.readTarget() ?? this.#scratch,
    callback: (n: number, buf: Uint8Array): boolean => {
      const chunk = (buf as Buffer).subarray(0, n);
      const sink = this.#sink;
      if (sink === undefined) this.#early.push(Buffer.from(chunk));
      else if (sink.data(chunk, buf === this.#scratch ? buf.length - n : 0)) {
        if (buf.buffer === this.#scratch.buffer)
          this.#scratch = Buffer.allocUnsafeSlow(SCRATCH_BYTES);
      }
      return true;
    },
  } satisfies OnReadOpts;

  attach(sink: CarrierSink): void {
    this.#sink = sink;
    for (const chunk of this.#early.splice(0)) sink.data(chunk, 0);
  }
}

/** A connected `net.Socket` (Unix, TCP, TLS or a socketpair) as a carrier. */
export class SocketCarrier implements Carrier {
  readonly kind = 'socket';
  readonly #socket: Socket;
  readonly #reads: DirectReads | undefined;

  /** `reads`: the `onread` the socket was created with, if any; else it emits 'data'. */
  constructor(socket: Socket, reads?: DirectReads) {
    this.#socket = socket;
    this.#reads = reads;
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
    if (this.#reads === undefined) s.on('data', (chunk: Buffer) => sink.data(chunk, 0));
    else this.#reads.attach(sink);
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
