import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import diagnosticsChannel from 'node:diagnostics_channel';
import type { Socket } from 'node:net';
import { type ChannelOptions, resolveLimits } from '../../channel/channel.js';
import type { ChannelLimits, Endpoint, HandleState } from '../../channel/endpoint.js';
import { IpcError, type IpcErrorCode } from '../../errors.js';
import { PipeEndState } from '../../pipe/pipe.js';
import { ByteRing } from '../../pipe/ring.js';
import { PipeSignals } from '../../pipe/signals.js';
import { Bridge } from './bridge.js';
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
const SMALL_COPY = 64;
const AUTH_LABEL = 'ftl-ipc socket auth v1';
const ERROR_CODES: IpcErrorCode[] = ['PROTOCOL_ERROR', 'AUTH_FAILED', 'TIMEOUT'];
const NO_HANDLES: HandleState[] = [];

type Phase = 'hello' | 'auth' | 'open' | 'dead';

/**
 * One socket carrying many channels. It owns the framing, the credit books of every channel id
 * and the batching of writes: frames are appended to a large buffer and written once per turn
 * of the event loop (or when the buffer fills), which is what makes small messages cheap.
 */
export class Connection {
  readonly socket: Socket;
  readonly #client: boolean;
  readonly #limits: ChannelLimits;
  readonly #ceiling: ChannelLimits;
  readonly #maxChannels: number;
  readonly #secret: Buffer | undefined;
  readonly #nonce = randomBytes(NONCE_BYTES);
  readonly #heartbeatMs: number;
  readonly #timeoutOption: number | undefined;
  #peerHello: Hello | undefined;
  #phase: Phase = 'hello';
  #links = new Map<number, Link>();
  #nextId: number;
  #ending = false;
  // Output batching.
  #out = Buffer.allocUnsafe(OUT_CHUNK);
  #outStart = 0;
  #outEnd = 0;
  #flushScheduled = false;
  #creditDue: Link[] = [];
  // Input reassembly: bytes of an incomplete frame.
  #partial: Buffer[] = [];
  #partialBytes = 0;
  #partialNeed = 0;
  /** The link named by the header `#checkHeader` last accepted: saves a lookup per frame. */
  #checked: Link | undefined;
  // Liveness.
  #timer: NodeJS.Timeout | undefined;
  #lastReceived = Date.now();
  #wroteSinceTick = false;
  #settle: { resolve(root: SocketEndpoint): void; reject(err: IpcError): void } | undefined;
  #failure: IpcError | undefined;

  constructor(socket: Socket, client: boolean, options: ConnectionOptions = {}) {
    this.socket = socket;
    this.#client = client;
    this.#nextId = client ? 1 : 2;
    this.#limits = resolveLimits({
      ...options,
      capacity: options.capacity ?? SOCKET_DEFAULT_LIMITS.capacity,
      capacityBytes: options.capacityBytes ?? SOCKET_DEFAULT_LIMITS.capacityBytes,
    });
    this.#ceiling = resolveLimits({ ...DEFAULT_CEILING, ...options.maxLimits });
    this.#maxChannels = options.maxChannels ?? 4096;
    this.#secret =
      options.secret === undefined
        ? undefined
        : Buffer.from(
            typeof options.secret === 'string' ? Buffer.from(options.secret) : options.secret,
          );
    this.#heartbeatMs = options.heartbeatMs ?? 5000;
    this.#timeoutOption = options.heartbeatTimeoutMs;
    socket.setNoDelay?.(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', (err) => {
      this.#failure ??= new IpcError('CONNECTION_FAILED', `socket error: ${err.message}`, {
        cause: err,
      });
    });
    socket.on('close', () => this.#lost());
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
    const s = this.socket;
    return s.remoteAddress === undefined ? 'unix socket' : `${s.remoteAddress}:${s.remotePort}`;
  }

  // ---- writing -------------------------------------------------------------------------------

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
        });
      }
      this.#links.set(id, link);
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

  writeClose(link: Link): void {
    if (this.#phase === 'dead') return;
    const at = this.#reserve(HEADER_BYTES);
    writeHeader(this.#out, at, 0, FRAME_CLOSE, 0, link.id, 0);
    if (link.gotClose) this.#free(link);
  }

  /** `link` has credits to grant; they go out with the next flush, one frame per link. */
  creditDue(link: Link): void {
    this.#creditDue.push(link);
    this.#scheduleFlush();
  }

  /** Room for `n` bytes in the output buffer; a full buffer is written out first. */
  #reserve(n: number): number {
    if (this.#outEnd + n > this.#out.length) {
      this.#writeOut();
      if (this.#out.length - this.#outEnd < Math.max(n, OUT_CHUNK / 4)) {
        this.#out = Buffer.allocUnsafe(Math.max(OUT_CHUNK, n));
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
    this.#write(this.#out.subarray(this.#outStart, this.#outEnd));
    this.#outStart = this.#outEnd;
  }

  #write(buf: Buffer): void {
    if (this.#phase === 'dead' || this.socket.destroyed) return;
    this.#wroteSinceTick = true;
    this.socket.write(buf);
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    setImmediate(this.#flush);
  }

  #flush = (): void => {
    this.#flushScheduled = false;
    const due = this.#creditDue;
    if (due.length > 0) {
      this.#creditDue = [];
      for (const link of due) this.#writeCredit(link);
    }
    this.#writeOut();
    if (this.#ending && this.#links.size === 0) this.socket.end();
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
    if (this.#links.size === 0) {
      // Nothing is left to talk about: end gracefully once the last frames are out.
      this.#ending = true;
      this.#scheduleFlush();
    }
  }

  // ---- reading -------------------------------------------------------------------------------

  #onData(chunk: Buffer): void {
    this.#lastReceived = Date.now();
    const buf = chunk;
    let at = 0;
    if (this.#partialBytes > 0) {
      this.#partial.push(chunk);
      this.#partialBytes += chunk.length;
      if (this.#partialNeed === 0 && this.#partialBytes >= HEADER_BYTES) {
        const head = Buffer.concat(this.#partial, HEADER_BYTES);
        const length = get32(head, 0);
        const problem = this.#checkHeader(head, 0, length);
        if (problem !== undefined) {
          this.#protocolError(problem);
          return;
        }
        this.#partialNeed = HEADER_BYTES + length;
      }
      const need = this.#partialNeed;
      if (need === 0 || this.#partialBytes < need) return;
      // Assemble exactly the one frame; the rest of this chunk is parsed where it lies, so
      // large messages are copied once, not once per chunk they share with the next one.
      at = need - (this.#partialBytes - chunk.length);
      const frame = Buffer.concat(this.#partial, need);
      this.#partial = [];
      this.#partialBytes = 0;
      this.#partialNeed = 0;
      this.#frame(frame, 0, need - HEADER_BYTES);
    }
    while (this.#phase !== 'dead') {
      const left = buf.length - at;
      if (left < HEADER_BYTES) break;
      const length = get32(buf, at);
      const problem = this.#checkHeader(buf, at, length);
      if (problem !== undefined) {
        this.#protocolError(problem);
        return;
      }
      if (left < HEADER_BYTES + length) {
        this.#partialNeed = HEADER_BYTES + length;
        break;
      }
      this.#frame(buf, at, length);
      at += HEADER_BYTES + length;
    }
    if (at < buf.length && this.#phase !== 'dead') {
      this.#partial = [buf.subarray(at)];
      this.#partialBytes = buf.length - at;
    }
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
    // A view, not a copy: the chunk stays alive while a message from it does.
    const data = new Uint8Array(buf.buffer, buf.byteOffset + start, dataBytes);
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
      link.deliver(type, data, handles);
      return;
    }
    // This side already closed the channel: the message dies here, and so do its handles.
    for (const h of handles) h.close();
  }

  #import(buf: Buffer, at: number): HandleState | undefined {
    const d = readDescriptor(buf, at);
    const peerParity = this.#client ? 0 : 1;
    let problem: string | undefined;
    if (d.id % 2 !== peerParity || this.#links.has(d.id)) {
      problem = `handle descriptor names channel id ${d.id}, which the peer may not open`;
    } else if (this.#links.size >= this.#maxChannels) {
      problem = `the peer opened more than ${this.#maxChannels} channels`;
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
    if (d.kind !== KIND_CHANNEL) return this.#importPipe(d);
    const limits = Object.freeze(d.limits);
    const endpoint = new SocketEndpoint(this, d.id, limits, limits, {
      messages: d.creditMessages,
      bytes: d.creditBytes,
    });
    this.#links.set(d.id, endpoint);
    return endpoint;
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
    this.#links.set(d.id, link);
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
    const buf = Buffer.allocUnsafe(HEADER_BYTES + AUTH_BYTES);
    writeHeader(buf, 0, AUTH_BYTES, FRAME_AUTH, 0, ROOT_ID, 0);
    this.#mac(this.#client, this.#nonce, hello.nonce).copy(buf, HEADER_BYTES);
    this.#write(buf);
  }

  /** The proof that `client`'s side, which chose `own`, knows the secret; bound to both nonces. */
  #mac(client: boolean, own: Buffer, theirs: Buffer): Buffer {
    return createHmac('sha256', this.#secret as Buffer)
      .update(AUTH_LABEL)
      .update(client ? 'c' : 's')
      .update(own)
      .update(theirs)
      .digest();
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
    this.#links.set(ROOT_ID, root);
    this.#startHeartbeat();
    const settle = this.#settle;
    this.#settle = undefined;
    settle?.resolve(root);
  }

  // ---- liveness and failure ------------------------------------------------------------------

  #startHeartbeat(): void {
    const peerMs = (this.#peerHello as Hello).heartbeatMs;
    const timeoutMs = peerMs === 0 ? 0 : (this.#timeoutOption ?? 3 * peerMs);
    const periods = [this.#heartbeatMs, timeoutMs / 4].filter((ms) => ms > 0);
    if (periods.length === 0) return;
    this.#timer = setInterval(
      () => {
        if (timeoutMs > 0 && Date.now() - this.#lastReceived > timeoutMs) {
          this.fail(
            new IpcError('TIMEOUT', `no heartbeat from ${this.remote} for ${timeoutMs} ms`),
          );
          return;
        }
        if (this.#heartbeatMs > 0 && !this.#wroteSinceTick) {
          const at = this.#reserve(HEADER_BYTES);
          writeHeader(this.#out, at, 0, FRAME_PING, 0, ROOT_ID, 0);
        }
        this.#wroteSinceTick = false;
      },
      Math.min(...periods),
    );
    this.#timer.unref();
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
      this.socket.end();
      // A peer that does not read must not keep the socket open.
      setTimeout(() => this.socket.destroy(), 1000).unref();
    } else {
      this.socket.destroy();
    }
    this.#lost();
  }

  /** The socket is gone: every channel on it is closed from the far side. */
  #lost(): void {
    if (this.#phase === 'dead') return;
    this.#phase = 'dead';
    clearInterval(this.#timer);
    this.#partial = [];
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
