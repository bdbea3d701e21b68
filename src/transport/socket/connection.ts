import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import diagnosticsChannel from 'node:diagnostics_channel';
import { type ChannelOptions, resolveLimits } from '../../channel/channel.js';
import { copyRange, SMALL_COPY } from '../../channel/copy.js';
import type { ChannelLimits, Endpoint, HandleState } from '../../channel/endpoint.js';
import { newCounters } from '../../channel/local.js';
import { IpcError, type IpcErrorCode } from '../../errors.js';
import { PipeEndState } from '../../pipe/pipe.js';
import { ByteRing } from '../../pipe/ring.js';
import { PipeSignals } from '../../pipe/signals.js';
import { Bridge } from './bridge.js';
import type { Carrier } from './carrier.js';
import { SocketEndpoint } from './endpoint.js';
import {
  AUTH_BYTES,
  checkLimits,
  checkPipeDescriptor,
  DESCRIPTOR_BYTES,
  type Descriptor,
  decodeHello,
  encodeHello,
  FRAME_AUTH,
  FRAME_CLOSE,
  FRAME_CREDIT,
  FRAME_ERROR,
  FRAME_HELLO,
  FRAME_MSG,
  FRAME_PING,
  get32,
  HEADER_BYTES,
  HELLO_BYTES,
  HELLO_FLAG_AUTH,
  type Hello,
  KIND_CHANNEL,
  KIND_PIPE_CONSUMER,
  KIND_PIPE_PRODUCER,
  MAX_ERROR_BYTES,
  MAX_PIPE_CAPACITY,
  NONCE_BYTES,
  ROOT_ID,
  readDescriptor,
  writeDescriptor,
  writeHeader,
} from './frame.js';
import type { Link } from './link.js';
import { PipeReceiver, PipeSender, pipeLimits } from './pipe.js';

export interface ConnectionOptions extends ChannelOptions {
  /** Both sides must hold the same secret; checked by an HMAC handshake before any channel opens. */
  secret?: string | Uint8Array;
  /** Send a PING after this many idle milliseconds; 0 sends none. Default 5000. */
  heartbeatMs?: number;
  /**
   * Close the connection when nothing arrived for this long. Default three of the peer's
   * heartbeat intervals; never applied when the peer announced no heartbeat.
   */
  heartbeatTimeoutMs?: number;
  /** Give up on a handshake that takes longer. Default 10000. */
  handshakeTimeoutMs?: number;
  /** The largest limits the peer may announce for a channel it opens here. */
  maxLimits?: ChannelOptions;
  /** Most channels open at once on one connection. Default 4096. */
  maxChannels?: number;
  /**
   * Most bytes of output held in user space (not yet taken by the kernel); beyond it, sends meet
   * BACKPRESSURE until the socket drains, whatever credits the peer returned. Default 1 MiB.
   */
  maxOutputBytes?: number;
  /**
   * Most the channels and pipes the peer opens here may make this side hold, in all
   * (`capacityBytes` + 64 bytes per message slot each). Default 1 GiB: a thousand channels of
   * the default 1 MiB, as a busy service holds; lower it for peers that are not trusted.
   */
  maxPeerBytes?: number;
  /**
   * The same, before the application has taken the connection from `listen`'s backlog. Default
   * 4 MiB: a client may open a channel of the default limits right after connecting, before the
   * listener's `accept()` could have run (nothing on the wire tells it when), and 4 MiB holds
   * three of them.
   */
  maxUnacceptedBytes?: number;
}

/** Published when a connection is closed because of what the peer did (or failed to do). */
export const socketDiagnostics = {
  error: diagnosticsChannel.channel('ftl-ipc:socket:error'),
} as const;

/**
 * Limits of a connection's root channel when the options name none. Credits return one round
 * trip after a receive, so a window of `capacity` messages caps a channel at capacity / round
 * trip: FTL's 32 would stop near 0.3 M msg/s at 100 µs. docs/socket-transport.md, "Default
 * limits and throughput".
 */
export const SOCKET_DEFAULT_LIMITS = { capacity: 1024, capacityBytes: 1024 * 1024 } as const;
const DEFAULT_CEILING: ChannelOptions = {
  capacity: 1 << 20,
  capacityBytes: 64 * 1024 * 1024,
  maxMessageBytes: 16 * 1024 * 1024,
  maxHandles: 1024,
};
const OUT_CHUNK = 256 * 1024;
/** The rest of a frame this large or more is read straight into the frame: no copy. */
const DIRECT_READ_MIN = 16 * 1024;
/**
 * Output written out as soon as this much is batched, not at the end of the turn: the peer
 * starts on the first frames (and returns their credits) while this side makes the rest, where
 * one write per turn would make the two sides take turns.
 */
const EAGER_WRITE_BYTES = 8 * 1024;
const MiB = 1024 * 1024;
/** A peer's announced heartbeat only sets our timeout, and only within this range. */
const MIN_PEER_HEARTBEAT_MS = 100;
const MAX_PEER_HEARTBEAT_MS = 3_600_000;
/** The largest delay setTimeout takes without overflowing to 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const PING = Buffer.alloc(HEADER_BYTES);
writeHeader(PING, 0, 0, FRAME_PING, 0, ROOT_ID, 0);
const EMPTY_OUT = Buffer.alloc(0);

function integerOption(
  name: string,
  value: number | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new IpcError(
      'INVALID_ARGUMENT',
      `${name} must be an integer from ${min} to ${max}, got ${String(v)}`,
    );
  }
  return v;
}

/** Checks every option (INVALID_ARGUMENT) and fills in the defaults. */
/** What the channels and pipes a peer opens may make this side hold, unless told otherwise. */
export const DEFAULT_MAX_PEER_BYTES = 1024 * 1024 * 1024;

export function resolveConnectionOptions(options: ConnectionOptions) {
  const timeout = options.heartbeatTimeoutMs;
  return {
    limits: resolveLimits({
      ...options,
      capacity: options.capacity ?? SOCKET_DEFAULT_LIMITS.capacity,
      capacityBytes: options.capacityBytes ?? SOCKET_DEFAULT_LIMITS.capacityBytes,
    }),
    ceiling: resolveLimits({ ...DEFAULT_CEILING, ...options.maxLimits }),
    maxChannels: integerOption('maxChannels', options.maxChannels, 4096, 1, 2 ** 31),
    maxOutputBytes: integerOption('maxOutputBytes', options.maxOutputBytes, MiB, 1, 2 ** 31),
    maxPeerBytes: integerOption(
      'maxPeerBytes',
      options.maxPeerBytes,
      DEFAULT_MAX_PEER_BYTES,
      0,
      2 ** 42,
    ),
    maxUnacceptedBytes: integerOption(
      'maxUnacceptedBytes',
      options.maxUnacceptedBytes,
      4 * MiB,
      0,
      2 ** 42,
    ),
    heartbeatMs: integerOption('heartbeatMs', options.heartbeatMs, 5000, 0, MAX_TIMER_MS),
    heartbeatTimeoutMs:
      timeout === undefined
        ? undefined
        : integerOption('heartbeatTimeoutMs', timeout, 0, 1, MAX_TIMER_MS),
    handshakeTimeoutMs: integerOption(
      'handshakeTimeoutMs',
      options.handshakeTimeoutMs,
      10_000,
      1,
      MAX_TIMER_MS,
    ),
  };
}

/** What a queued message costs besides its data (object, queue slot): counted per capacity slot. */
const MESSAGE_COST = 64;

/** The most an id the peer opens can make this side hold: its bytes and its message slots. */
function peerCost(d: Descriptor): number {
  return d.limits.capacityBytes + d.limits.capacity * MESSAGE_COST;
}

/** Every open connection of this process, for {@link flushSockets}. */
const live = new Set<Connection>();

/**
 * Resolves once every socket connection of this process has handed what was sent to the kernel
 * and its peer has answered every CLOSE this side sent, or died. Await it before
 * `process.exit()`: then the peer loses nothing that was sent before the close.
 */
export async function flushSockets(): Promise<void> {
  await Promise.all([...live].map((conn) => conn.flushed()));
}
const AUTH_LABEL = 'ftl-ipc socket auth v1';
const ERROR_CODES: IpcErrorCode[] = ['PROTOCOL_ERROR', 'AUTH_FAILED', 'TIMEOUT'];
const NO_HANDLES: HandleState[] = [];
const NO_COUNTERS = newCounters();
const NO_BYTES = new Uint8Array(0);

type Phase = 'hello' | 'auth' | 'open' | 'dead';

/**
 * The protocol engine: one carrier (a socket, NATS subjects) carrying many channels. It owns the
 * framing, the handshake, the credit books of every channel id, handles, budgets, heartbeats and
 * the batching of writes: frames are appended to a large buffer and written once per turn of the
 * event loop (or when the buffer fills), which is what makes small messages cheap.
 */
export class Connection {
  readonly carrier: Carrier;
  readonly #client: boolean;
  readonly #limits: ChannelLimits;
  readonly #ceiling: ChannelLimits;
  readonly #maxChannels: number;
  readonly #maxOutput: number;
  readonly #maxPeerBytes: number;
  readonly #maxUnacceptedBytes: number;
  /** Taken from `listen`'s backlog by the application (always, for other connections). */
  #accepted: boolean;
  /** `capacityBytes` announced by the open ids the peer opened. */
  #peerBytes = 0;
  /** Ids this side has not closed: while there are none, the socket does not hold the process. */
  #openHere = 0;
  readonly #secret: Buffer | undefined;
  readonly #nonce = randomBytes(NONCE_BYTES);
  readonly #heartbeatMs: number;
  readonly #timeoutOption: number | undefined;
  #peerHello: Hello | undefined;
  /** What the carrier binds to the handshake (its subjects), covered by AUTH; none on a socket. */
  #binding: Buffer | undefined;
  #phase: Phase = 'hello';
  #links = new Map<number, Link>();
  #nextId: number;
  /** This side closed every link: the stream ends after the output batched so far. */
  #ending = false;
  /** The carrier was told to end: nothing more can be written. */
  #ended = false;
  // Output batching; the buffer is allocated when there is something to write.
  #out = EMPTY_OUT;
  #outStart = 0;
  #outEnd = 0;
  /** The buffer each write of batched output came from, oldest first (writes finish in order). */
  #outWrites: Buffer<ArrayBuffer>[] = [];
  /**
   * Output buffers no write refers to any more, ready to batch into again: at most the output
   * budget's worth, and none once the output is idle.
   */
  #spareOut: Buffer<ArrayBuffer>[] = [];
  #flushScheduled = false;
  #creditDue: Link[] = [];
  /** Links that found the output over budget; told when it drains. */
  #outputWaiters: Link[] = [];
  #flushWaiters: (() => void)[] = [];
  // Input reassembly: a partial header, then one buffer for the frame, sized from its checked header.
  #head = Buffer.alloc(HEADER_BYTES);
  #partial: Buffer | undefined;
  /** `#partial` lies in the carrier's read buffer, which reads the rest there (readTarget). */
  #partialInPlace = false;
  /** The chunk being parsed, and whether a message kept a view of it. */
  #parsing: Buffer | undefined;
  #keptView = false;
  #partialBytes = 0;
  #partialNeed = 0;
  #plainOf: Buffer | undefined;
  #plainView: Uint8Array = NO_BYTES;
  /** The link named by the header `#checkHeader` last accepted: saves a lookup per frame. */
  #checked: Link | undefined;
  // Liveness.
  #pingTimer: NodeJS.Timeout | undefined;
  #deadTimer: NodeJS.Timeout | undefined;
  #lastReceived = Date.now();
  #wroteSinceTick = false;
  #settle: { resolve(root: SocketEndpoint): void; reject(err: IpcError): void } | undefined;
  #failure: IpcError | undefined;

  constructor(carrier: Carrier, client: boolean, options: ConnectionOptions = {}, accepted = true) {
    this.carrier = carrier;
    this.#client = client;
    this.#accepted = accepted;
    this.#nextId = client ? 1 : 2;
    const o = resolveConnectionOptions(options);
    this.#limits = o.limits;
    this.#ceiling = o.ceiling;
    this.#maxChannels = o.maxChannels;
    this.#maxOutput = o.maxOutputBytes;
    this.#maxPeerBytes = o.maxPeerBytes;
    this.#maxUnacceptedBytes = o.maxUnacceptedBytes;
    this.#heartbeatMs = o.heartbeatMs;
    this.#timeoutOption = o.heartbeatTimeoutMs;
    this.#secret =
      options.secret === undefined
        ? undefined
        : Buffer.from(
            typeof options.secret === 'string' ? Buffer.from(options.secret) : options.secret,
          );
    carrier.start({
      data: (chunk, room) => this.#onData(chunk, room),
      readTarget: () => this.#readTarget(),
      error: (err) => {
        // A carrier that checks messages itself (NATS) reports what the peer did wrong as an
        // IpcError: fail as for a bad frame (published, the carrier reset).
        if (err instanceof IpcError) {
          this.fail(err, false);
          return;
        }
        this.#failure ??= new IpcError(
          'CONNECTION_FAILED',
          `${this.carrier.kind} error: ${err.message}`,
          { cause: err },
        );
      },
      closed: () => this.#lost(),
    });
    live.add(this);
  }

  /** Exchanges HELLO (and AUTH); resolves with the root channel's endpoint. */
  handshake(timeoutMs = 10_000): Promise<SocketEndpoint> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => this.fail(new IpcError('TIMEOUT', `no handshake within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.#settle = {
        resolve: (root) => {
          clearTimeout(timer);
          resolve(root);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      const flags = this.#secret === undefined ? 0 : HELLO_FLAG_AUTH;
      this.#write(
        encodeHello({
          flags,
          nonce: this.#nonce,
          limits: this.#limits,
          heartbeatMs: this.#heartbeatMs,
        }),
      );
    });
  }

  get remote(): string {
    return this.carrier.remote;
  }

  /** The application took this connection from `listen`'s backlog: the full peer budget applies. */
  accept(): void {
    this.#accepted = true;
  }

  /** Closes the connection without blaming the peer (a full backlog, a closing listener). */
  close(): void {
    if (this.#phase === 'dead') return;
    this.#writeOut();
    this.carrier.end();
    // A peer that does not read must not keep the carrier open.
    setTimeout(() => this.carrier.destroy(), 1000).unref();
    this.#lost();
  }

  /**
   * Resolves once the output reached the kernel and the peer answered every CLOSE this side
   * sent (so it read everything before it), or the connection died. Only then may this process
   * exit without the peer losing data: a peer that writes to a socket whose process is gone
   * gets EPIPE, and Node then discards what it had not read yet.
   */
  flushed(): Promise<void> {
    this.#flush();
    if (this.#isFlushed()) return Promise.resolve();
    return new Promise((resolve) => this.#flushWaiters.push(resolve));
  }

  #isFlushed(): boolean {
    if (this.#phase === 'dead') return true;
    if (this.#held() > 0) return false;
    for (const link of this.#links.values()) if (link.sentClose && !link.gotClose) return false;
    return true;
  }

  #checkFlushed(): void {
    if (this.#flushWaiters.length === 0 || !this.#isFlushed()) return;
    for (const resolve of this.#flushWaiters.splice(0)) resolve();
  }

  // ---- writing -------------------------------------------------------------------------------

  /**
   * Whether `bytes` more fit in the output budget now. When they do not, `link` is told
   * (`outputReady`) once the socket has drained below it.
   */
  outputRoom(link: Link, bytes: number): boolean {
    const held = this.#held();
    if (held === 0 || held + HEADER_BYTES + bytes <= this.#maxOutput) return true;
    if (!link.waitingOutput) {
      link.waitingOutput = true;
      this.#outputWaiters.push(link);
    }
    return false;
  }

  /** Output bytes in user space: in the batch buffer, or written and not yet taken by the kernel. */
  #held(): number {
    return this.carrier.pendingBytes + this.#outEnd - this.#outStart;
  }

  writeMessage(id: number, type: number, data: Uint8Array, handles: readonly HandleState[]): void {
    const count = handles.length;
    if (this.#nextId + 2 * count > 0xffff_ffff) {
      throw new IpcError('TOO_MANY_HANDLES', 'this connection ran out of channel ids');
    }
    const length = data.byteLength + count * DESCRIPTOR_BYTES;
    const at = this.#reserve(HEADER_BYTES + length);
    const out = this.#out;
    writeHeader(out, at, length, FRAME_MSG, count, id, type);
    const n = data.byteLength;
    if (n > SMALL_COPY) out.set(data, at + HEADER_BYTES);
    // TypedArray#set has a fixed cost that dominates for a few bytes.
    else for (let i = 0, o = at + HEADER_BYTES; i < n; i++) out[o + i] = data[i] as number;
    if (count === 0) return;
    const started: (Bridge | PipeSender | PipeReceiver)[] = [];
    let d = at + HEADER_BYTES + data.byteLength;
    for (const inner of handles) {
      const id = this.#allocateId();
      let link: Bridge | PipeSender | PipeReceiver;
      if (inner.kind === 'channel') {
        const bridge = new Bridge(this, id, inner as Endpoint);
        writeDescriptor(out, d, {
          id,
          kind: KIND_CHANNEL,
          limits: bridge.inner.limits,
          creditMessages: bridge.grantMessages,
          creditBytes: bridge.grantBytes,
          origin: bridge.origin,
          counters: bridge.inner.counters,
        });
        link = bridge;
      } else {
        const state = inner as PipeEndState;
        const capacity = state.ring.capacity;
        // The producer or consumer of this end stays here; its new id relays the bytes.
        if (state.kind === 'pipe-consumer') {
          link = new PipeSender(this, id, state, capacity);
        } else {
          link = new PipeReceiver(this, id, state, state.ring.free);
        }
        writeDescriptor(out, d, {
          id,
          kind: state.kind === 'pipe-consumer' ? KIND_PIPE_CONSUMER : KIND_PIPE_PRODUCER,
          limits: pipeLimits(capacity),
          creditMessages: 0,
          creditBytes: link.grantBytes,
          origin: 0,
          counters: NO_COUNTERS,
        });
      }
      this.#add(link);
      d += DESCRIPTOR_BYTES;
      started.push(link);
    }
    for (const link of started) link.start();
  }

  /** One MSG of pipe bytes (type 0, no handles); the caller spent the byte credits. */
  writePipeBytes(id: number, bytes: Uint8Array): void {
    const at = this.#reserve(HEADER_BYTES + bytes.byteLength);
    writeHeader(this.#out, at, bytes.byteLength, FRAME_MSG, 0, id, 0);
    this.#out.set(bytes, at + HEADER_BYTES);
  }

  /**
   * Sends CLOSE, with the count of MSGs accepted on the id, and writes out at once: what was
   * sent before a close reaches the kernel even if the process exits next.
   */
  writeClose(link: Link): void {
    if (this.#phase === 'dead') return;
    const at = this.#reserve(HEADER_BYTES);
    writeHeader(this.#out, at, 0, FRAME_CLOSE, 0, link.id, link.accepted >>> 0);
    // This side closed all it had here: end the stream after these frames, and stay alive until
    // the peer ends its side, which it does once it has read up to our end. Exiting sooner could
    // lose what we sent: a peer that writes to a socket whose process is gone gets EPIPE, and
    // Node then discards what it had not read yet.
    if (--this.#openHere === 0) this.#ending = true;
    if (link.gotClose) this.#free(link);
    this.#flush();
  }

  /** `link` has credits to grant; they go out with the next flush, one frame per link. */
  creditDue(link: Link): void {
    this.#creditDue.push(link);
    this.#scheduleFlush();
  }

  #add(link: Link): void {
    this.#links.set(link.id, link);
    this.#openHere++;
  }

  /** Room for `n` bytes in the output buffer; a full buffer is written out first. */
  #reserve(n: number): number {
    if (this.#outEnd + n > this.#out.length || this.#outEnd - this.#outStart >= EAGER_WRITE_BYTES) {
      this.#writeOut();
      if (this.#out.length - this.#outEnd < Math.max(n, OUT_CHUNK / 4)) {
        this.#out =
          (n <= OUT_CHUNK && this.#spareOut.pop()) || Buffer.allocUnsafe(Math.max(OUT_CHUNK, n));
        this.#outStart = 0;
        this.#outEnd = 0;
      }
    }
    const at = this.#outEnd;
    this.#outEnd += n;
    this.#scheduleFlush();
    return at;
  }

  #writeOut(): void {
    if (this.#outEnd === this.#outStart) return;
    if (this.#canWrite()) {
      this.#outWrites.push(this.#out);
      this.#write(this.#out.subarray(this.#outStart, this.#outEnd), this.#writtenOut);
    }
    // Nothing pending: the medium took it all during the write, so the buffer is free again.
    // Reusing buffers, rather than cutting fresh 256 KiB ones, keeps bulk output off the GC.
    if (this.carrier.pendingBytes === 0) this.#outEnd = 0;
    this.#outStart = this.#outEnd;
  }

  #canWrite(): boolean {
    return this.#phase !== 'dead' && !this.#ended;
  }

  #write(buf: Buffer, done = this.#written): void {
    if (!this.#canWrite()) return;
    this.#wroteSinceTick = true;
    this.carrier.write(buf, done);
  }

  /** A write of batched output finished: its buffer is spare once no later write needs it. */
  #writtenOut = (): void => {
    const from = this.#outWrites.shift();
    const spare = this.#spareOut;
    if (this.#held() === 0) spare.length = 0;
    else if (
      from !== this.#out &&
      from !== this.#outWrites[0] &&
      from?.length === OUT_CHUNK &&
      spare.length * OUT_CHUNK < this.#maxOutput
    ) {
      spare.push(from);
    }
    this.#written();
  };

  /** A write reached the kernel: wake whoever waits for output room, once below the budget. */
  #written = (): void => {
    this.#checkFlushed();
    if (this.#outputWaiters.length + this.#creditDue.length === 0) return;
    if (this.#held() > this.#maxOutput) return;
    if (this.#creditDue.length > 0) this.#scheduleFlush();
    const waiters = this.#outputWaiters;
    this.#outputWaiters = [];
    for (const link of waiters) {
      link.waitingOutput = false;
      link.outputReady();
    }
  };

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(this.#flush);
  }

  #flush = (): void => {
    this.#flushScheduled = false;
    const due = this.#creditDue;
    // Credits wait while the peer does not read: it cannot make this side buffer without bound.
    if (due.length > 0 && this.#held() <= this.#maxOutput) {
      this.#creditDue = [];
      for (const link of due) this.#writeCredit(link);
    }
    this.#writeOut();
    if (this.#ending && !this.#ended) {
      this.#ended = true;
      this.carrier.end();
    }
  };

  #writeCredit(link: Link): void {
    const { dueMessages, dueBytes } = link;
    // Credits after this side's CLOSE would name an id the far side may already have freed.
    if (dueMessages + dueBytes === 0 || link.sentClose || this.#phase === 'dead') return;
    link.dueMessages = 0;
    link.dueBytes = 0;
    link.grantMessages += dueMessages;
    link.grantBytes += dueBytes;
    const at = this.#reserve(HEADER_BYTES + 4);
    writeHeader(this.#out, at, 4, FRAME_CREDIT, 0, link.id, dueMessages);
    this.#out.writeUInt32LE(dueBytes, at + HEADER_BYTES);
  }

  #allocateId(): number {
    const id = this.#nextId;
    this.#nextId += 2;
    return id;
  }

  #free(link: Link): void {
    this.#links.delete(link.id);
    this.#peerBytes -= link.announcedBytes;
    this.#checkFlushed();
  }

  // ---- reading -------------------------------------------------------------------------------

  /** Returns whether `chunk`'s memory is still in use: a message's view, an incomplete frame. */
  #onData(chunk: Buffer, room: number): boolean {
    this.#lastReceived = Date.now();
    this.#parsing = chunk;
    this.#keptView = false;
    this.#parse(chunk, room);
    this.#parsing = undefined;
    // The cached view must not keep the chunk alive once it is parsed.
    this.#plainOf = undefined;
    this.#plainView = NO_BYTES;
    return this.#keptView || this.#partialInPlace;
  }

  /** The rest of the incomplete frame, for the carrier to read into, when that saves a copy. */
  #readTarget(): Buffer | undefined {
    const frame = this.#partial;
    if (frame === undefined) return undefined;
    const rest = this.#partialNeed - this.#partialBytes;
    return this.#partialInPlace || rest >= DIRECT_READ_MIN
      ? frame.subarray(this.#partialBytes)
      : undefined;
  }

  #parse(chunk: Buffer, room: number): void {
    let at = this.#partialBytes > 0 ? this.#continuePartial(chunk) : 0;
    while (this.#phase !== 'dead' && at >= 0) {
      const left = chunk.length - at;
      if (left < HEADER_BYTES) break;
      const length = get32(chunk, at);
      const problem = this.#checkHeader(chunk, at, length);
      if (problem !== undefined) {
        this.#protocolError(problem);
        return;
      }
      if (left < HEADER_BYTES + length) break;
      this.#frame(chunk, at, length);
      at += HEADER_BYTES + length;
    }
    if (at < 0 || at === chunk.length || this.#phase === 'dead') return;
    // An incomplete frame: keep its header, or one buffer of exactly the size it announced.
    const left = chunk.length - at;
    if (left < HEADER_BYTES) {
      chunk.copy(this.#head, 0, at);
    } else {
      const need = HEADER_BYTES + get32(chunk, at);
      this.#partialNeed = need;
      if (need - left >= DIRECT_READ_MIN && need - left <= room) {
        // The carrier reads the rest in place, after what arrived: a large frame is not copied.
        this.#partial = Buffer.from(chunk.buffer, chunk.byteOffset + at, need);
        this.#partialInPlace = true;
      } else {
        this.#partial = Buffer.allocUnsafeSlow(need);
        chunk.copy(this.#partial, 0, at);
      }
    }
    this.#partialBytes = left;
  }

  /**
   * Feeds `chunk` to the incomplete frame; returns where the rest of the chunk starts, or -1 when
   * all of it was taken (or the connection died).
   */
  #continuePartial(chunk: Buffer): number {
    let at = 0;
    if (this.#partial === undefined) {
      const n = Math.min(HEADER_BYTES - this.#partialBytes, chunk.length);
      chunk.copy(this.#head, this.#partialBytes, 0, n);
      this.#partialBytes += n;
      at = n;
      if (this.#partialBytes < HEADER_BYTES) return -1;
      const length = get32(this.#head, 0);
      const problem = this.#checkHeader(this.#head, 0, length);
      if (problem !== undefined) {
        this.#protocolError(problem);
        return -1;
      }
      this.#partialNeed = HEADER_BYTES + length;
      this.#partial = Buffer.allocUnsafeSlow(this.#partialNeed);
      this.#head.copy(this.#partial);
    }
    const frame = this.#partial;
    const n = Math.min(this.#partialNeed - this.#partialBytes, chunk.length - at);
    // The carrier may have read straight into the frame (readTarget): then it is in place.
    if (
      chunk.buffer !== frame.buffer ||
      chunk.byteOffset !== frame.byteOffset + this.#partialBytes
    ) {
      chunk.copy(frame, this.#partialBytes, at, at + n);
    }
    this.#partialBytes += n;
    at += n;
    if (this.#partialBytes < this.#partialNeed) return -1;
    this.#partial = undefined;
    this.#partialInPlace = false;
    this.#partialBytes = 0;
    this.#frame(frame, 0, this.#partialNeed - HEADER_BYTES);
    this.#partialNeed = 0;
    return at;
  }

  /** Checks a header before its payload is awaited or allocated; says what is wrong, if anything. */
  #checkHeader(buf: Buffer, at: number, length: number): string | undefined {
    const frameType = buf[at + 4] as number;
    const handleCount = (buf[at + 6] as number) | ((buf[at + 7] as number) << 8);
    const id = get32(buf, at + 8);
    if (frameType === FRAME_ERROR) {
      return length > MAX_ERROR_BYTES ? `ERROR frame of ${length} bytes` : undefined;
    }
    if (this.#phase === 'hello') {
      if (frameType !== FRAME_HELLO) return `frame type ${frameType} before HELLO`;
      return length === HELLO_BYTES ? undefined : `HELLO of ${length} bytes`;
    }
    if (this.#phase === 'auth') {
      if (frameType !== FRAME_AUTH) return `frame type ${frameType} before AUTH`;
      return length === AUTH_BYTES ? undefined : `AUTH of ${length} bytes`;
    }
    if (frameType === FRAME_PING) return length === 0 ? undefined : `PING of ${length} bytes`;
    if (frameType !== FRAME_MSG && frameType !== FRAME_CREDIT && frameType !== FRAME_CLOSE) {
      return `unknown frame type ${frameType}`;
    }
    const link = this.#links.get(id);
    if (link === undefined) return `unknown channel id ${id}`;
    this.#checked = link;
    if (link.gotClose) return `frame type ${frameType} on channel ${id} after its CLOSE`;
    if (frameType === FRAME_CREDIT) return length === 4 ? undefined : `CREDIT of ${length} bytes`;
    if (frameType === FRAME_CLOSE) return length === 0 ? undefined : `CLOSE of ${length} bytes`;
    const dataBytes = length - handleCount * DESCRIPTOR_BYTES;
    if (dataBytes < 0) {
      return `MSG of ${length} bytes cannot hold ${handleCount} handle descriptors`;
    }
    return link.refuse(dataBytes, handleCount, get32(buf, at + 12));
  }

  #frame(buf: Buffer, at: number, length: number): void {
    const frameType = buf[at + 4] as number;
    const arg = get32(buf, at + 12);
    const start = at + HEADER_BYTES;
    switch (frameType) {
      case FRAME_MSG:
        this.#message(this.#checked as Link, buf, at, arg, length);
        return;
      case FRAME_CREDIT: {
        const link = this.#checked as Link;
        if (link.sentClose) return;
        const bytes = get32(buf, start);
        const problem = link.refuseCredit(arg, bytes);
        if (problem !== undefined) {
          this.#protocolError(problem);
          return;
        }
        link.credit(arg, bytes);
        return;
      }
      case FRAME_CLOSE: {
        const link = this.#checked as Link;
        const problem = link.closedAfter(arg);
        if (problem !== undefined) {
          this.#protocolError(problem);
          return;
        }
        link.gotClose = true;
        if (link.sentClose) this.#free(link);
        else link.farClosed();
        return;
      }
      case FRAME_PING:
        return;
      case FRAME_HELLO:
        this.#hello(buf.subarray(start, start + length));
        return;
      case FRAME_AUTH:
        this.#auth(buf.subarray(start, start + length));
        return;
      default: {
        const text = buf.toString('utf8', start, start + length);
        const code = ERROR_CODES[arg] ?? 'PROTOCOL_ERROR';
        this.fail(new IpcError(code, `the peer closed the connection: ${text}`), false);
      }
    }
  }

  #message(link: Link, buf: Buffer, at: number, type: number, length: number): void {
    const count = (buf[at + 6] as number) | ((buf[at + 7] as number) << 8);
    const dataBytes = length - count * DESCRIPTOR_BYTES;
    const start = at + HEADER_BYTES;
    // A view when the frame is at least half of the memory it was read into (or has a buffer of
    // its own), else a copy: a small message must not keep a 64 KiB chunk alive for a peer to
    // multiply, nor a read buffer the carrier would reuse.
    let data: Uint8Array;
    if (2 * length >= buf.buffer.byteLength - 2 * HEADER_BYTES) {
      data = new Uint8Array(buf.buffer, buf.byteOffset + start, dataBytes);
      if (buf.buffer === this.#parsing?.buffer) this.#keptView = true;
    } else data = copyRange(this.#plain(buf), start, dataBytes);
    link.grantMessages--;
    link.grantBytes -= dataBytes;
    let handles = NO_HANDLES;
    if (count > 0) {
      handles = [];
      for (let i = 0, d = start + dataBytes; i < count; i++, d += DESCRIPTOR_BYTES) {
        const endpoint = this.#import(buf, d);
        if (endpoint === undefined) {
          for (const h of handles) h.close();
          return;
        }
        handles.push(endpoint);
      }
    }
    if (!link.sentClose) {
      if (link.deliver(type, data, handles)) link.accepted++;
      return;
    }
    // This side already closed the channel: the message dies here, and so do its handles.
    for (const h of handles) h.close();
  }

  /** `chunk` as a plain Uint8Array (cached per chunk): copyRange slices those in one step. */
  #plain(chunk: Buffer): Uint8Array {
    if (this.#plainOf !== chunk) {
      this.#plainOf = chunk;
      this.#plainView = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length);
    }
    return this.#plainView;
  }

  #import(buf: Buffer, at: number): HandleState | undefined {
    const d = readDescriptor(buf, at);
    const peerParity = this.#client ? 0 : 1;
    let problem: string | undefined;
    if (d.id % 2 !== peerParity || this.#links.has(d.id)) {
      problem = `handle descriptor names channel id ${d.id}, which the peer may not open`;
    } else if (this.#links.size >= this.#maxChannels) {
      problem = `the peer opened more than ${this.#maxChannels} channels`;
    } else if (this.#peerBytes + peerCost(d) > this.#peerBudget()) {
      problem = `channel ${d.id} may hold ${peerCost(d)} bytes (capacityBytes ${d.limits.capacityBytes} + ${d.limits.capacity} messages x ${MESSAGE_COST}); with the ${this.#peerBytes} bytes of the peer's open channels, that exceeds the ${this.#peerBudget()} bytes allowed${this.#accepted ? '' : ' before the connection is accepted'}`;
    } else if (d.kind === KIND_CHANNEL) {
      problem = checkLimits(d.limits, this.#ceiling);
      if (
        problem === undefined &&
        (d.creditMessages > d.limits.capacity || d.creditBytes > d.limits.capacityBytes)
      ) {
        problem = `handle descriptor for channel ${d.id} grants more credits than its capacity`;
      }
    } else if (d.kind === KIND_PIPE_PRODUCER || d.kind === KIND_PIPE_CONSUMER) {
      problem = checkPipeDescriptor(d, Math.min(this.#ceiling.capacityBytes, MAX_PIPE_CAPACITY));
    } else {
      problem = `handle descriptor for channel ${d.id} has unknown kind ${d.kind}`;
    }
    if (problem !== undefined) {
      this.#protocolError(problem);
      return undefined;
    }
    this.#peerBytes += peerCost(d);
    if (d.kind !== KIND_CHANNEL) return this.#importPipe(d);
    const limits = Object.freeze(d.limits);
    const endpoint = new SocketEndpoint(
      this,
      d.id,
      limits,
      limits,
      { messages: d.creditMessages, bytes: d.creditBytes },
      d.origin,
      d.counters,
    );
    endpoint.announcedBytes = peerCost(d);
    this.#add(endpoint);
    return endpoint;
  }

  #peerBudget(): number {
    return this.#accepted ? this.#maxPeerBytes : this.#maxUnacceptedBytes;
  }

  /** A new local pipe whose other end is the far side's, relayed over the descriptor's id. */
  #importPipe(d: Descriptor): HandleState {
    const ring = ByteRing.create(d.limits.capacityBytes);
    const signals = new PipeSignals(ring);
    const producer = new PipeEndState('pipe-producer', ring, signals);
    const consumer = new PipeEndState('pipe-consumer', ring, signals);
    const link =
      d.kind === KIND_PIPE_CONSUMER
        ? new PipeReceiver(this, d.id, producer, ring.capacity)
        : new PipeSender(this, d.id, consumer, d.creditBytes);
    link.announcedBytes = peerCost(d);
    this.#add(link);
    link.start();
    return d.kind === KIND_PIPE_CONSUMER ? consumer : producer;
  }

  #hello(payload: Buffer): void {
    const hello = decodeHello(payload);
    if (typeof hello === 'string') {
      this.#protocolError(hello);
      return;
    }
    const problem = checkLimits(hello.limits, this.#ceiling);
    if (problem !== undefined) {
      this.#protocolError(`HELLO root limits: ${problem}`);
      return;
    }
    const theirsAuth = (hello.flags & HELLO_FLAG_AUTH) !== 0;
    if (theirsAuth !== (this.#secret !== undefined)) {
      this.fail(
        new IpcError(
          'AUTH_FAILED',
          this.#secret === undefined
            ? 'the peer requires a shared secret and none was configured'
            : 'the peer did not offer the shared-secret handshake this side requires',
        ),
      );
      return;
    }
    this.#peerHello = hello;
    if (this.#secret === undefined) {
      this.#open();
      return;
    }
    this.#phase = 'auth';
    const [c, s] = this.#client ? [this.#nonce, hello.nonce] : [hello.nonce, this.#nonce];
    this.#binding = this.carrier.bind?.(this.#secret, c, s);
    const buf = Buffer.allocUnsafe(HEADER_BYTES + AUTH_BYTES);
    writeHeader(buf, 0, AUTH_BYTES, FRAME_AUTH, 0, ROOT_ID, 0);
    this.#mac(this.#client, this.#nonce, hello.nonce).copy(buf, HEADER_BYTES);
    this.#write(buf);
  }

  /**
   * The proof that `client`'s side, which chose `own`, knows the secret; bound to both nonces
   * and to what the carrier binds (nothing on a socket).
   */
  #mac(client: boolean, own: Buffer, theirs: Buffer): Buffer {
    const mac = createHmac('sha256', this.#secret as Buffer)
      .update(AUTH_LABEL)
      .update(client ? 'c' : 's')
      .update(own)
      .update(theirs);
    if (this.#binding !== undefined) mac.update(this.#binding);
    return mac.digest();
  }

  #auth(payload: Buffer): void {
    const expected = this.#mac(!this.#client, (this.#peerHello as Hello).nonce, this.#nonce);
    if (!timingSafeEqual(expected, payload)) {
      this.fail(new IpcError('AUTH_FAILED', 'the peer does not know the shared secret'));
      return;
    }
    this.#open();
  }

  #open(): void {
    const peer = (this.#peerHello as Hello).limits;
    this.#phase = 'open';
    const root = new SocketEndpoint(this, ROOT_ID, Object.freeze(peer), this.#limits, {
      messages: peer.capacity,
      bytes: peer.capacityBytes,
    });
    this.#add(root);
    this.#startHeartbeat();
    const settle = this.#settle;
    this.#settle = undefined;
    settle?.resolve(root);
  }

  // ---- liveness and failure ------------------------------------------------------------------

  /**
   * Our PINGs follow our own interval. The peer's announced interval only sets when we give up on
   * it (clamped, so a peer cannot make us wake often or overflow a timer); 0 means never.
   */
  #startHeartbeat(): void {
    if (this.#heartbeatMs > 0) {
      this.#pingTimer = setInterval(() => {
        // Idle means nothing written since the last tick and nothing waiting to be written.
        if (!this.#wroteSinceTick && this.#held() === 0) this.#write(PING);
        this.#wroteSinceTick = false;
      }, this.#heartbeatMs);
      this.#pingTimer.unref();
    }
    const peerMs = (this.#peerHello as Hello).heartbeatMs;
    if (peerMs === 0) return;
    const clamped = Math.min(Math.max(peerMs, MIN_PEER_HEARTBEAT_MS), MAX_PEER_HEARTBEAT_MS);
    const timeoutMs = this.#timeoutOption ?? 3 * clamped;
    const check = () => {
      const idle = Date.now() - this.#lastReceived;
      if (idle < timeoutMs) {
        this.#deadTimer = setTimeout(check, timeoutMs - idle).unref();
        return;
      }
      this.fail(new IpcError('TIMEOUT', `no heartbeat from ${this.remote} for ${timeoutMs} ms`));
    };
    this.#deadTimer = setTimeout(check, timeoutMs).unref();
  }

  #protocolError(problem: string): void {
    this.fail(new IpcError('PROTOCOL_ERROR', `protocol error from ${this.remote}: ${problem}`));
  }

  /**
   * Closes the connection because of `error`: publishes it, tells the peer (unless the peer is
   * the one who reported it), and makes every channel on it see PEER_CLOSED.
   */
  fail(error: IpcError, tellPeer = true): void {
    if (this.#phase === 'dead') return;
    this.#failure = error;
    if (socketDiagnostics.error.hasSubscribers) {
      socketDiagnostics.error.publish({ error, remote: this.remote });
    }
    if (tellPeer) {
      const text = Buffer.from(error.message.slice(0, MAX_ERROR_BYTES / 4));
      const buf = Buffer.allocUnsafe(HEADER_BYTES + text.length);
      const kind = Math.max(0, ERROR_CODES.indexOf(error.code));
      writeHeader(buf, 0, text.length, FRAME_ERROR, 0, ROOT_ID, kind);
      text.copy(buf, HEADER_BYTES);
      this.#writeOut();
      this.#write(buf);
      this.close();
    } else {
      this.carrier.destroy();
      this.#lost();
    }
  }

  /** The socket is gone: every channel on it is closed from the far side. */
  #lost(): void {
    if (this.#phase === 'dead') return;
    if (this.#partialBytes > 0 && this.#failure === undefined) {
      const need = this.#partialNeed === 0 ? HEADER_BYTES : this.#partialNeed;
      this.#failure = new IpcError(
        'PROTOCOL_ERROR',
        `protocol error from ${this.remote}: the connection ended ${this.#partialBytes} bytes into a frame of ${need}`,
      );
      socketDiagnostics.error.publish({ error: this.#failure, remote: this.remote });
    }
    this.#phase = 'dead';
    live.delete(this);
    clearInterval(this.#pingTimer);
    clearTimeout(this.#deadTimer);
    this.#partial = undefined;
    this.#partialBytes = 0;
    this.#outputWaiters = [];
    this.#checkFlushed();
    const links = [...this.#links.values()];
    this.#links.clear();
    for (const link of links) link.farClosed();
    const settle = this.#settle;
    this.#settle = undefined;
    settle?.reject(
      this.#failure ??
        new IpcError('CONNECTION_FAILED', 'the connection closed during the handshake'),
    );
  }
}
