/**
 * The socket framing protocol; docs/socket-transport.md is its normative description. Every
 * frame is a 16-byte little-endian header followed by `length` payload bytes.
 */
import type { ChannelLimits, EndpointCounters } from '../../channel/endpoint.js';

export const HEADER_BYTES = 16;
export const DESCRIPTOR_BYTES = 64;
export const HELLO_BYTES = 60;
export const AUTH_BYTES = 32;
export const NONCE_BYTES = 32;
export const MAX_ERROR_BYTES = 1024;
/** DataPipe's own limit on `capacityBytes`. */
export const MAX_PIPE_CAPACITY = 2 ** 30;
export const MAGIC = 0x316c_7466; // the bytes 'ftl1' read as a little-endian uint32
export const VERSION = 2;
export const HELLO_FLAG_AUTH = 1;

export const FRAME_HELLO = 1;
export const FRAME_AUTH = 2;
export const FRAME_MSG = 3;
export const FRAME_CREDIT = 4;
export const FRAME_CLOSE = 5;
export const FRAME_PING = 6;
export const FRAME_ERROR = 7;

/** The root channel every connection starts with; exported channels take other ids. */
export const ROOT_ID = 0;

export interface FrameHeader {
  length: number;
  frameType: number;
  handleCount: number;
  channelId: number;
  arg: number;
}

/** Byte stores: several times cheaper than Buffer#writeUInt32LE on the per-message path. */
function put32(buf: Uint8Array, at: number, value: number): void {
  buf[at] = value;
  buf[at + 1] = value >>> 8;
  buf[at + 2] = value >>> 16;
  buf[at + 3] = value >>> 24;
}

export function get32(buf: Uint8Array, at: number): number {
  return (
    ((buf[at] as number) |
      ((buf[at + 1] as number) << 8) |
      ((buf[at + 2] as number) << 16) |
      ((buf[at + 3] as number) << 24)) >>>
    0
  );
}

export function writeHeader(
  buf: Uint8Array,
  at: number,
  length: number,
  frameType: number,
  handleCount: number,
  channelId: number,
  arg: number,
): void {
  put32(buf, at, length);
  buf[at + 4] = frameType;
  buf[at + 5] = 0;
  buf[at + 6] = handleCount;
  buf[at + 7] = handleCount >>> 8;
  put32(buf, at + 8, channelId);
  put32(buf, at + 12, arg);
}

/** Descriptor kinds: what the new id carries. */
export const KIND_CHANNEL = 0;
export const KIND_PIPE_PRODUCER = 1;
export const KIND_PIPE_CONSUMER = 2;

/** What a handle descriptor carries: a new channel id and what the receiving end may do. */
export interface Descriptor {
  id: number;
  /** KIND_CHANNEL, or the pipe end the receiver gets (KIND_PIPE_PRODUCER, KIND_PIPE_CONSUMER). */
  kind: number;
  limits: ChannelLimits;
  /** Initial send credits of the new end: room in its peer's queue at export time. */
  creditMessages: number;
  creditBytes: number;
  /** Names the endpoint this id leads to, in the process that holds it (0: none). */
  origin: number;
  /** The moved end's statistics: they travel with it (each modulo 2^32). */
  counters: EndpointCounters;
}

const COUNTER_FIELDS = [
  'sent',
  'received',
  'dropped',
  'backpressured',
  'discarded',
  'highWaterMark',
  'sentBytes',
  'receivedBytes',
] as const;

export function writeDescriptor(buf: Buffer, at: number, d: Descriptor): void {
  buf.writeUInt32LE(d.id, at);
  buf.writeUInt32LE(d.limits.capacity, at + 4);
  buf.writeUInt32LE(d.limits.capacityBytes, at + 8);
  buf.writeUInt32LE(d.limits.maxMessageBytes, at + 12);
  buf.writeUInt16LE(d.limits.maxHandles, at + 16);
  buf.writeUInt16LE(d.kind, at + 18);
  buf.writeUInt32LE(d.creditMessages, at + 20);
  buf.writeUInt32LE(d.creditBytes, at + 24);
  buf.writeUInt32LE(d.origin, at + 28);
  COUNTER_FIELDS.forEach((field, i) => {
    buf.writeUInt32LE(d.counters[field] >>> 0, at + 32 + 4 * i);
  });
}

export function readDescriptor(buf: Uint8Array, at: number): Descriptor {
  const view = Buffer.from(buf.buffer, buf.byteOffset + at, DESCRIPTOR_BYTES);
  return {
    id: view.readUInt32LE(0),
    kind: view.readUInt16LE(18),
    limits: {
      capacity: view.readUInt32LE(4),
      capacityBytes: view.readUInt32LE(8),
      maxMessageBytes: view.readUInt32LE(12),
      maxHandles: view.readUInt16LE(16),
    },
    creditMessages: view.readUInt32LE(20),
    creditBytes: view.readUInt32LE(24),
    origin: view.readUInt32LE(28),
    counters: {
      sent: view.readUInt32LE(32),
      received: view.readUInt32LE(36),
      dropped: view.readUInt32LE(40),
      backpressured: view.readUInt32LE(44),
      discarded: view.readUInt32LE(48),
      highWaterMark: view.readUInt32LE(52),
      sentBytes: view.readUInt32LE(56),
      receivedBytes: view.readUInt32LE(60),
    },
  };
}

export interface Hello {
  flags: number;
  nonce: Buffer;
  limits: ChannelLimits;
  heartbeatMs: number;
}

export function encodeHello(hello: Hello): Buffer {
  const buf = Buffer.alloc(HEADER_BYTES + HELLO_BYTES);
  writeHeader(buf, 0, HELLO_BYTES, FRAME_HELLO, 0, ROOT_ID, 0);
  let at = HEADER_BYTES;
  buf.writeUInt32LE(MAGIC, at);
  buf.writeUInt16LE(VERSION, at + 4);
  buf.writeUInt16LE(hello.flags, at + 6);
  hello.nonce.copy(buf, at + 8);
  at += 8 + NONCE_BYTES;
  buf.writeUInt32LE(hello.limits.capacity, at);
  buf.writeUInt32LE(hello.limits.capacityBytes, at + 4);
  buf.writeUInt32LE(hello.limits.maxMessageBytes, at + 8);
  buf.writeUInt16LE(hello.limits.maxHandles, at + 12);
  buf.writeUInt32LE(hello.heartbeatMs, at + 16);
  return buf;
}

/** Returns the HELLO, or a string saying what is wrong with it. */
export function decodeHello(payload: Uint8Array): Hello | string {
  const buf = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  if (buf.readUInt32LE(0) !== MAGIC) return 'the peer does not speak the ftl-ipc socket protocol';
  const version = buf.readUInt16LE(4);
  if (version !== VERSION)
    return `unsupported protocol version ${version} (this side speaks ${VERSION})`;
  const at = 8 + NONCE_BYTES;
  return {
    flags: buf.readUInt16LE(6),
    nonce: Buffer.from(buf.subarray(8, at)),
    limits: {
      capacity: buf.readUInt32LE(at),
      capacityBytes: buf.readUInt32LE(at + 4),
      maxMessageBytes: buf.readUInt32LE(at + 8),
      maxHandles: buf.readUInt16LE(at + 12),
    },
    heartbeatMs: buf.readUInt32LE(at + 16),
  };
}

/** Why a set of limits announced by the peer is unacceptable, or undefined when it is fine. */
export function checkLimits(limits: ChannelLimits, ceiling: ChannelLimits): string | undefined {
  const { capacity, capacityBytes, maxMessageBytes, maxHandles } = limits;
  if (capacity < 1 || capacity > ceiling.capacity) {
    return `capacity ${capacity} is outside 1..${ceiling.capacity}`;
  }
  if (capacityBytes < 1 || capacityBytes > ceiling.capacityBytes) {
    return `capacityBytes ${capacityBytes} is outside 1..${ceiling.capacityBytes}`;
  }
  if (maxMessageBytes < 1 || maxMessageBytes > Math.min(capacityBytes, ceiling.maxMessageBytes)) {
    return `maxMessageBytes ${maxMessageBytes} is outside 1..${Math.min(capacityBytes, ceiling.maxMessageBytes)}`;
  }
  if (maxHandles > ceiling.maxHandles) {
    return `maxHandles ${maxHandles} exceeds ${ceiling.maxHandles}`;
  }
  return undefined;
}

/** Why a pipe descriptor is unacceptable, or undefined when it is fine. */
export function checkPipeDescriptor(d: Descriptor, maxCapacity: number): string | undefined {
  const { capacity, capacityBytes, maxMessageBytes, maxHandles } = d.limits;
  if (capacityBytes < 1 || capacityBytes > maxCapacity) {
    return `pipe descriptor for channel ${d.id}: capacityBytes ${capacityBytes} is outside 1..${maxCapacity}`;
  }
  if (
    capacity !== 0 ||
    maxMessageBytes !== capacityBytes ||
    maxHandles !== 0 ||
    d.creditMessages !== 0
  ) {
    return `pipe descriptor for channel ${d.id}: capacity ${capacity}, maxMessageBytes ${maxMessageBytes}, maxHandles ${maxHandles}, message credits ${d.creditMessages} (must be 0, capacityBytes, 0, 0)`;
  }
  // The receiver of a consumer gets bytes only; the receiver of a producer may send what it is granted.
  const maxCredit = d.kind === KIND_PIPE_PRODUCER ? capacityBytes : 0;
  if (d.creditBytes > maxCredit) {
    return `pipe descriptor for channel ${d.id} grants ${d.creditBytes} bytes of credit (at most ${maxCredit})`;
  }
  return undefined;
}
