import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Carrier, CarrierSink } from '../socket/carrier.js';

/**
 * Each NATS message is `[u32 sequence][u8 kind][stream bytes]`. The engine needs a reliable
 * stream and NATS core is at most once (a reconnect may drop messages), so every message is
 * numbered: a gap closes the connection instead of delivering with a hole.
 */
const HEADER = 5;
const KIND_DATA = 0;
/** No more data from this side (after what was sent). */
const KIND_END = 1;
/** This side gave up on the connection: close now. */
const KIND_RESET = 2;
const MAX_EARLY = 8;

/** The live carriers of each NATS connection: one `closed()` hook per connection, not per carrier. */
const carriers = new WeakMap<NatsConnection, Set<NatsCarrier>>();

function carriersOf(nc: NatsConnection): Set<NatsCarrier> {
  let live = carriers.get(nc);
  if (live === undefined) {
    const set = new Set<NatsCarrier>();
    live = set;
    carriers.set(nc, set);
    void nc.closed().then((err) => {
      for (const c of [...set]) c.connectionClosed(err ?? undefined);
    });
  }
  return live;
}

/**
 * The byte stream of one engine connection over two NATS subjects: this side subscribes to
 * `own` and publishes to `peer`. Output counts as pending until the server answered a flush
 * that followed it, so the engine's output budget bounds what the NATS client buffers.
 */
export class NatsCarrier implements Carrier {
  readonly kind = 'nats';
  readonly #nc: NatsConnection;
  readonly #sub: Subscription;
  #peer = '';
  #sink: CarrierSink | undefined;
  /** Messages that arrived before the engine started (the peer may speak first). */
  #early: Msg[] = [];
  #sendSeq = 0;
  #recvSeq = 0;
  #maxChunk: number;
  #pending = 0;
  #unflushed: { bytes: number; done: () => void }[] = [];
  #flushing = false;
  #endSent = false;
  #finished = false;
  readonly #onFinish: () => void;

  constructor(nc: NatsConnection, own: string, onFinish: () => void) {
    this.#nc = nc;
    this.#onFinish = onFinish;
    this.#maxChunk = Math.max(1024, (nc.info?.max_payload ?? 1024 * 1024) - HEADER);
    this.#sub = nc.subscribe(own, { callback: (err, msg) => this.#arrived(err, msg) });
    carriersOf(nc).add(this);
  }

  /** The NATS connection closed for good (by its owner, or out of reconnect attempts). */
  connectionClosed(err: Error | undefined): void {
    this.#fail(err ?? new Error('the NATS connection was closed'), false);
  }

  /** The subject the peer publishes to. */
  get own(): string {
    return this.#sub.getSubject();
  }

  /** Names the subject this side publishes to; before `start`. */
  connectTo(peer: string): void {
    this.#peer = peer;
  }

  get remote(): string {
    return `NATS subject ${this.#peer} via ${this.#nc.getServer()}`;
  }

  get pendingBytes(): number {
    return this.#pending;
  }

  start(sink: CarrierSink): void {
    // After the engine's constructor returns and its handshake began, as a socket's events are.
    queueMicrotask(() => {
      this.#sink = sink;
      if (this.#finished) sink.closed();
      for (const msg of this.#early.splice(0)) this.#arrived(null, msg);
    });
  }

  write(buf: Buffer, done: () => void): void {
    if (this.#finished || this.#endSent) return;
    for (let at = 0; at < buf.length; at += this.#maxChunk) {
      const n = Math.min(this.#maxChunk, buf.length - at);
      const msg = this.#frame(KIND_DATA, n);
      buf.copy(msg, HEADER, at, at + n);
      this.#publish(msg);
    }
    this.#pending += buf.length;
    this.#unflushed.push({ bytes: buf.length, done });
    this.#flush();
  }

  end(): void {
    if (this.#finished || this.#endSent) return;
    this.#endSent = true;
    this.#publish(this.#frame(KIND_END, 0));
  }

  destroy(): void {
    if (this.#finished) return;
    this.#publish(this.#frame(KIND_RESET, 0));
    this.#finish();
  }

  #frame(kind: number, n: number): Buffer {
    const msg = Buffer.allocUnsafe(HEADER + n);
    msg.writeUInt32LE(this.#sendSeq, 0);
    this.#sendSeq = (this.#sendSeq + 1) >>> 0;
    msg[4] = kind;
    return msg;
  }

  #publish(msg: Buffer): void {
    if (this.#peer === '' || this.#nc.isClosed()) return;
    try {
      this.#nc.publish(this.#peer, msg);
    } catch (err) {
      this.#fail(err as Error);
    }
  }

  /** One flush in flight at a time; it covers every write made before it was sent. */
  #flush(): void {
    if (this.#flushing || this.#unflushed.length === 0 || this.#finished) return;
    this.#flushing = true;
    const batch = this.#unflushed;
    this.#unflushed = [];
    this.#nc.flush().then(
      () => {
        this.#flushing = false;
        for (const w of batch) {
          this.#pending -= w.bytes;
          w.done();
        }
        this.#flush();
      },
      (err: Error) => this.#fail(err),
    );
  }

  #arrived(err: Error | null, msg: Msg): void {
    if (this.#finished) return;
    if (err !== null) {
      this.#fail(err);
      return;
    }
    const sink = this.#sink;
    if (sink === undefined) {
      // Only the peer's HELLO can come this early; a flood is not held.
      if (this.#early.push(msg) > MAX_EARLY)
        this.#fail(new Error('too many NATS messages before the handshake'));
      return;
    }
    const data = msg.data;
    if (data.length < HEADER) {
      this.#fail(new Error(`a NATS message of ${data.length} bytes, shorter than its header`));
      return;
    }
    const seq = (data[0] as number) | ((data[1] as number) << 8) | ((data[2] as number) << 16);
    const got = (seq | ((data[3] as number) << 24)) >>> 0;
    if (got !== this.#recvSeq) {
      this.#fail(
        new Error(
          `NATS message ${got} arrived where ${this.#recvSeq} was due: messages were lost (a reconnect?)`,
        ),
      );
      return;
    }
    this.#recvSeq = (got + 1) >>> 0;
    const kind = data[4] as number;
    if (kind === KIND_DATA) {
      const n = data.length - HEADER;
      // The client's data is a view into its socket read buffer: the engine may keep views of
      // what it is given, so it gets that buffer only when this message is most of it.
      if (2 * n >= data.buffer.byteLength) {
        sink.data(Buffer.from(data.buffer, data.byteOffset + HEADER, n), 0);
      } else if (n > 0) sink.data(Buffer.from(data.subarray(HEADER)), 0);
    } else if (kind === KIND_END) {
      // As a socket does, answer the peer's end with ours: nothing more flows either way.
      this.end();
      this.#finish();
    } else if (kind === KIND_RESET) {
      this.#fail(new Error('the peer reset the connection'), false);
    } else {
      this.#fail(new Error(`a NATS message of unknown kind ${kind}`));
    }
  }

  #fail(err: Error, tellPeer = true): void {
    if (this.#finished) return;
    this.#sink?.error(err);
    if (tellPeer) this.destroy();
    else this.#finish();
  }

  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    carriersOf(this.#nc).delete(this);
    this.#early = [];
    this.#sub.unsubscribe();
    for (const w of this.#unflushed.splice(0)) w.done();
    this.#pending = 0;
    this.#sink?.closed();
    this.#onFinish();
  }
}
