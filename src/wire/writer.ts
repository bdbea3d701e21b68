import { copyBytes } from '../channel/copy.js';
import { Channel, type Handle, type OutgoingMessage } from '../channel/index.js';
import { IpcError } from '../errors.js';
import type { PipeEnd } from '../idl/model.js';
import { shown } from '../shown.js';
import { HEADER_BYTES, MAGIC_0, MAGIC_1, VERSION } from './frame.js';
import { type HandleClass, type PipeEndOf, pipeEndClasses } from './handles.js';
import { FieldPath } from './path.js';

const utf8 = new TextEncoder();

/** `String.prototype.isWellFormed` is in Node 20 but not yet in the es2023 lib. */
const isWellFormed = (s: string): boolean =>
  (s as unknown as { isWellFormed(): boolean }).isWellFormed();

/**
 * Encodes one message into a buffer it reuses across messages, validating every value on the
 * way: generated encoders and the runtime codec both write through it, so they emit the same
 * bytes. Methods take the field name (or array index) only to name it in errors.
 */
export class Writer {
  #buf = new Uint8Array(1024);
  #view = new DataView(this.#buf.buffer);
  #pos = HEADER_BYTES;
  #handles: Handle[] = [];
  readonly #path = new FieldPath();
  /** Start of the run of absent optional fields at the end of the message, or -1. */
  #absentTail = -1;

  /**
   * Encodes a whole message; `body` writes the payload. With `transient`, `data` is a view of
   * this writer's buffer, valid only until the next message: for `Channel.send`, which copies at
   * once. Otherwise the result owns its memory.
   */
  message<T>(
    type: number,
    txid: number,
    flags: number,
    body: (w: Writer, value: T) => void,
    value: T,
    transient = false,
  ): OutgoingMessage {
    this.#pos = HEADER_BYTES;
    this.#handles = [];
    this.#path.clear();
    this.#absentTail = -1;
    body(this, value);
    const end = this.#absentTail >= 0 ? this.#absentTail : this.#pos;
    const buf = this.#buf;
    buf[0] = MAGIC_0;
    buf[1] = MAGIC_1;
    buf[2] = VERSION;
    buf[3] = flags;
    this.#view.setUint32(4, txid, true);
    const handles = this.#handles;
    this.#handles = [];
    const data = transient ? buf.subarray(0, end) : copyBytes(buf.subarray(0, end));
    return handles.length > 0 ? { type, data, handles } : { type, data };
  }

  #ensure(bytes: number): void {
    if (this.#pos + bytes <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#pos + bytes) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.#pos));
    this.#buf = next;
    this.#view = new DataView(next.buffer);
  }

  #fail(field: string | number, value: unknown, expected: string): never {
    throw new IpcError(
      'INVALID_ARGUMENT',
      `${this.#path.format(field)}: expected ${expected}, got ${shown(value)}`,
    );
  }

  // Integer checks test typeof first: a bit operator would run an object's valueOf or toString,
  // which may throw something other than INVALID_ARGUMENT, or lie.
  bool(field: string | number, v: boolean): void {
    if (typeof v !== 'boolean') this.#fail(field, v, 'a boolean');
    this.#ensure(1);
    this.#buf[this.#pos++] = v ? 1 : 0;
  }

  u8(field: string | number, v: number): void {
    if (typeof v !== 'number' || (v & 0xff) !== v) this.#fail(field, v, 'a uint8 (0 to 255)');
    this.#ensure(1);
    this.#buf[this.#pos++] = v;
  }

  i8(field: string | number, v: number): void {
    if (typeof v !== 'number' || (v << 24) >> 24 !== v)
      this.#fail(field, v, 'an int8 (-128 to 127)');
    this.#ensure(1);
    this.#buf[this.#pos++] = v & 0xff;
  }

  u16(field: string | number, v: number): void {
    if (typeof v !== 'number' || (v & 0xffff) !== v) this.#fail(field, v, 'a uint16 (0 to 65535)');
    this.#ensure(2);
    this.#view.setUint16(this.#pos, v, true);
    this.#pos += 2;
  }

  i16(field: string | number, v: number): void {
    if (typeof v !== 'number' || (v << 16) >> 16 !== v)
      this.#fail(field, v, 'an int16 (-32768 to 32767)');
    this.#ensure(2);
    this.#view.setInt16(this.#pos, v, true);
    this.#pos += 2;
  }

  u32(field: string | number, v: number): void {
    if (typeof v !== 'number' || v >>> 0 !== v) this.#fail(field, v, 'a uint32 (0 to 4294967295)');
    this.#ensure(4);
    this.#view.setUint32(this.#pos, v, true);
    this.#pos += 4;
  }

  i32(field: string | number, v: number): void {
    if (typeof v !== 'number' || (v | 0) !== v)
      this.#fail(field, v, 'an int32 (-2147483648 to 2147483647)');
    this.#ensure(4);
    this.#view.setInt32(this.#pos, v, true);
    this.#pos += 4;
  }

  u64(field: string | number, v: bigint): void {
    if (typeof v !== 'bigint' || BigInt.asUintN(64, v) !== v)
      this.#fail(field, v, 'a uint64 bigint (0n to 2n ** 64n - 1n)');
    this.#ensure(8);
    this.#view.setBigUint64(this.#pos, v, true);
    this.#pos += 8;
  }

  i64(field: string | number, v: bigint): void {
    if (typeof v !== 'bigint' || BigInt.asIntN(64, v) !== v)
      this.#fail(field, v, 'an int64 bigint (-(2n ** 63n) to 2n ** 63n - 1n)');
    this.#ensure(8);
    this.#view.setBigInt64(this.#pos, v, true);
    this.#pos += 8;
  }

  f32(field: string | number, v: number): void {
    if (typeof v !== 'number') this.#fail(field, v, 'a number');
    this.#ensure(4);
    this.#view.setFloat32(this.#pos, v, true);
    this.#pos += 4;
  }

  f64(field: string | number, v: number): void {
    if (typeof v !== 'number') this.#fail(field, v, 'a number');
    this.#ensure(8);
    this.#view.setFloat64(this.#pos, v, true);
    this.#pos += 8;
  }

  /** A u32 byte length, then UTF-8; `capacity` bounds the bytes, not the UTF-16 length. */
  string(field: string | number, v: string, capacity: number): void {
    // Every UTF-16 unit becomes at least one UTF-8 byte, so a longer string cannot fit.
    if (typeof v !== 'string' || v.length > capacity)
      this.#fail(field, v, `a string of at most ${capacity} UTF-8 bytes`);
    this.#ensure(4 + v.length * 3);
    const buf = this.#buf;
    const start = this.#pos + 4;
    let n = 0;
    // ASCII is by far the common case and needs no encoder call.
    for (; n < v.length; n++) {
      const c = v.charCodeAt(n);
      if (c >= 0x80) break;
      buf[start + n] = c;
    }
    if (n < v.length) {
      if (!isWellFormed(v)) this.#fail(field, v, 'a well-formed string (no lone surrogates)');
      n += utf8.encodeInto(n === 0 ? v : v.slice(n), buf.subarray(start + n)).written;
      if (n > capacity)
        this.#fail(field, v, `a string of at most ${capacity} UTF-8 bytes (it has ${n})`);
    }
    this.#view.setUint32(this.#pos, n, true);
    this.#pos = start + n;
  }

  bytes(field: string | number, v: Uint8Array, capacity: number): void {
    if (!(v instanceof Uint8Array) || v.length > capacity)
      this.#fail(field, v, `a Uint8Array of at most ${capacity} bytes`);
    this.#ensure(4 + v.length);
    this.#view.setUint32(this.#pos, v.length, true);
    this.#buf.set(v, this.#pos + 4);
    this.#pos += 4 + v.length;
  }

  channel(field: string | number, v: Channel): void {
    this.#handle(field, v, Channel);
  }

  pipe<E extends PipeEnd>(field: string | number, v: PipeEndOf<E>, end: E): void {
    this.#handle(field, v, pipeEndClasses[end]);
  }

  /** A u16 index into the message's handles; the handle itself travels beside the data. */
  #handle(field: string | number, v: Handle, type: HandleClass): void {
    if (!(v instanceof type)) this.#fail(field, v, `a ${type.name}`);
    const index = this.#handles.length;
    if (index > 0xffff) this.#fail(field, index + 1, 'at most 65536 handles in a message');
    this.#handles.push(v);
    this.u16(field, index);
  }

  enum<T extends number>(field: string | number, v: T, values: ReadonlySet<T>): void {
    if (!values.has(v)) this.#fail(field, v, `one of the enum's values ${[...values].join(', ')}`);
    this.u32(field, v);
  }

  /** Writes the presence byte of an optional field and tells whether to write the value. */
  present<T>(v: T | undefined): v is T {
    const present = v !== undefined;
    this.#ensure(1);
    this.#buf[this.#pos++] = present ? 1 : 0;
    return present;
  }

  /**
   * Like {@link present}, for the optional fields that end a message: absent ones at the very end
   * are left out, so appending optional fields keeps old messages valid (docs/wire-format.md).
   */
  tailPresent<T>(v: T | undefined): v is T {
    const at = this.#pos;
    const present = this.present(v);
    if (present) this.#absentTail = -1;
    else if (this.#absentTail < 0) this.#absentTail = at;
    return present;
  }

  struct<T>(field: string | number, v: T, body: (w: Writer, value: T) => void): void {
    if (typeof v !== 'object' || v === null) this.#fail(field, v, 'an object');
    this.#path.push(field);
    body(this, v);
    this.#path.pop();
  }

  array<T>(
    field: string | number,
    v: readonly T[],
    capacity: number,
    item: (w: Writer, value: T, index: number) => void,
  ): void {
    if (!Array.isArray(v) || v.length > capacity)
      this.#fail(field, v, `an array of at most ${capacity} items`);
    this.u32(field, v.length);
    this.#path.push(field);
    for (let i = 0; i < v.length; i++) item(this, v[i] as T, i);
    this.#path.pop();
  }
}

/** Generated encoders share one writer: encoding is synchronous and never re-entered. */
export const sharedWriter = new Writer();
