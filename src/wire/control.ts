/**
 * The RPC control parts of the header (docs/wire-format.md, "Cancel and deadline"): a cancel
 * message, and the deadline a request may carry after its payload. They are recognised here,
 * before decoding, so the codec itself keeps refusing these flags in any other place.
 */
import type { Message, OutgoingMessage } from '../channel/index.js';
import { IpcError } from '../errors.js';
import { HEADER_BYTES, MAGIC_0, MAGIC_1, VERSION } from './frame.js';

/** From client to server: stop working on the call with this transaction id. */
export const FLAG_CANCEL = 0x04;
/** On a request: the last 4 bytes of `data` are the milliseconds the client gives the call. */
export const FLAG_DEADLINE = 0x08;
export const DEADLINE_BYTES = 4;
/** On a request: the last 26 bytes of `data` are its W3C trace context (version, trace id, parent id, flags). */
export const FLAG_TRACE = 0x10;
export const TRACE_BYTES = 26;

// Byte by byte rather than through a DataView: `.buffer` of a small Uint8Array makes V8 move
// it off the heap, which costs more than the whole message.
function getUint32(data: Uint8Array, at: number): number {
  return (data[at]! | (data[at + 1]! << 8) | (data[at + 2]! << 16) | (data[at + 3]! << 24)) >>> 0;
}

function setUint32(data: Uint8Array, at: number, value: number): void {
  data[at] = value;
  data[at + 1] = value >>> 8;
  data[at + 2] = value >>> 16;
  data[at + 3] = value >>> 24;
}

/** Writes the transaction id of an encoded message that owns its data. */
export function setTxid(data: Uint8Array, txid: number): void {
  setUint32(data, 4, txid);
}

export function encodeCancel(type: number, txid: number): OutgoingMessage {
  const data = new Uint8Array(HEADER_BYTES);
  data[0] = MAGIC_0;
  data[1] = MAGIC_1;
  data[2] = VERSION;
  data[3] = FLAG_CANCEL;
  setUint32(data, 4, txid);
  return { type, data };
}

/** A copy of an encoded request with the deadline flag and the remaining milliseconds appended. */
export function withDeadline(message: OutgoingMessage, remainingMs: number): OutgoingMessage {
  const body = message.data!;
  const data = new Uint8Array(body.length + DEADLINE_BYTES);
  data.set(body);
  data[3]! |= FLAG_DEADLINE;
  setUint32(data, body.length, Math.min(0xffff_ffff, Math.max(0, Math.ceil(remainingMs))));
  return message.handles === undefined
    ? { type: message.type, data }
    : { type: message.type, data, handles: message.handles };
}

/** A copy of an encoded request with the trace flag and the 26 bytes of `trace` appended. */
export function withTrace(message: OutgoingMessage, trace: Uint8Array): OutgoingMessage {
  const body = message.data!;
  const data = new Uint8Array(body.length + TRACE_BYTES);
  data.set(body);
  data.set(trace, body.length);
  data[3]! |= FLAG_TRACE;
  return message.handles === undefined
    ? { type: message.type, data }
    : { type: message.type, data, handles: message.handles };
}

/** What the server makes of a received message's control flags. */
export interface Control {
  /** The transaction id a cancel stops, or 0 for a request or push. */
  readonly cancel: number;
  /** For a request or push: what to decode. */
  readonly message: Message;
  readonly timeoutMs: number | undefined;
  /** The request's trace context (26 bytes) when it carries a valid one. */
  readonly trace: Uint8Array | undefined;
}

/**
 * A cancel (its transaction id), or the message to decode with its deadline taken off. Only the
 * header of a cancel is checked here; a request's header is checked by the decoder.
 */
export function readControl(message: Message): Control {
  const data = message.data;
  const flags = data.length >= HEADER_BYTES ? data[3]! : 0;
  if (flags === FLAG_CANCEL) {
    if (data[0] !== MAGIC_0 || data[1] !== MAGIC_1 || data[2] !== VERSION)
      throw invalid('a cancel with a bad magic or version');
    if (data.length !== HEADER_BYTES)
      throw invalid(`a cancel carries no payload, got ${data.length - HEADER_BYTES} bytes`);
    if (message.handles.length > 0)
      throw invalid(`a cancel carries no handles, got ${message.handles.length}`);
    const txid = getUint32(data, 4);
    if (txid === 0) throw invalid('a cancel without a transaction id');
    return { cancel: txid, message, timeoutMs: undefined, trace: undefined };
  }
  if ((flags & (FLAG_DEADLINE | FLAG_TRACE)) === 0)
    return { cancel: 0, message, timeoutMs: undefined, trace: undefined };
  // The trace context comes last, after the deadline: taken off the end in that order.
  let end = data.length;
  let trace: Uint8Array | undefined;
  if ((flags & FLAG_TRACE) !== 0) {
    if (end < HEADER_BYTES + TRACE_BYTES)
      throw invalid(`a trace context needs ${TRACE_BYTES} bytes after the header, got ${end}`);
    end -= TRACE_BYTES;
    trace = validTrace(data.subarray(end, end + TRACE_BYTES));
  }
  let timeoutMs: number | undefined;
  if ((flags & FLAG_DEADLINE) !== 0) {
    if (end < HEADER_BYTES + DEADLINE_BYTES)
      throw invalid(`a deadline needs ${DEADLINE_BYTES} bytes after the header, got ${end}`);
    end -= DEADLINE_BYTES;
    timeoutMs = getUint32(data, end);
  }
  // The receiver owns the data: clear the flags in place so the decoder sees a plain request.
  data[3] = flags & ~(FLAG_DEADLINE | FLAG_TRACE);
  return {
    cancel: 0,
    message: { type: message.type, data: data.subarray(0, end), handles: message.handles },
    timeoutMs,
    trace,
  };
}

/**
 * The context as W3C Trace Context asks a receiver to take it: version 0, a trace id and a parent
 * id that are not all zeros; anything else is ignored (the call is served, as without one).
 */
function validTrace(trace: Uint8Array): Uint8Array | undefined {
  if (trace[0] !== 0) return undefined;
  const nonZero = (from: number, to: number) => trace.subarray(from, to).some((b) => b !== 0);
  return nonZero(1, 17) && nonZero(17, 25) ? trace : undefined;
}

function invalid(problem: string): IpcError {
  return new IpcError('INVALID_MESSAGE', `(message): ${problem}`);
}
