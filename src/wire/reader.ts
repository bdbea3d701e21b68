import { Channel, type Handle, type Message } from '../channel/index.js';
import { IpcError } from '../errors.js';
import type { PipeEnd } from '../idl/model.js';
import {
  FLAG_ERROR,
  FLAG_REPLY,
  HEADER_BYTES,
  KNOWN_FLAGS,
  MAGIC_0,
  MAGIC_1,
  VERSION,
} from './frame.js';
import { type HandleClass, type PipeEndOf, pipeEndClasses } from './handles.js';
import { FieldPath } from './path.js';

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Decodes one untrusted message. Every read checks the bytes left first, every length is checked
 * against its capacity and against what remains before anything is allocated, and every failure
 * is an IpcError INVALID_MESSAGE naming the field.
 */
export class Reader {
  readonly #data: Uint8Array;
  /** Made on first use: `.buffer` of a small Uint8Array moves it off V8's heap, a costly step. */
  #view: DataView | undefined;
  readonly #handles: readonly Handle[];
  readonly #path = new FieldPath();
  #pos: number;
  #nextHandle = 0;
  /** The header's flags and transaction id. */
  readonly flags: number;
  readonly txid: number;

  constructor(message: Message) {
    const data = message.data;
    this.#data = data;
    this.#handles = message.handles;
    this.#pos = HEADER_BYTES;
    if (data.length < HEADER_BYTES)
      this.#fail(undefined, `the ${HEADER_BYTES}-byte header is cut short at ${data.length} bytes`);
    if (data[0] !== MAGIC_0 || data[1] !== MAGIC_1)
      this.#fail(undefined, `bad magic 0x${hex(data[0]!)}${hex(data[1]!)}, expected 0x4649 ("FI")`);
    if (data[2] !== VERSION)
      this.#fail(undefined, `unsupported version ${data[2]}, this side speaks ${VERSION}`);
    this.flags = data[3]!;
    if ((this.flags & ~KNOWN_FLAGS) !== 0)
      this.#fail(undefined, `unknown flags 0x${hex(this.flags)}`);
    if ((this.flags & (FLAG_ERROR | FLAG_REPLY)) === FLAG_ERROR)
      this.#fail(undefined, `flags 0x${hex(this.flags)}: ERROR is only valid with REPLY`);
    this.txid = this.#u32At(4);
  }

  #dataView(): DataView {
    const data = this.#data;
    this.#view ??= new DataView(data.buffer, data.byteOffset, data.byteLength);
    return this.#view;
  }

  #u32At(at: number): number {
    const d = this.#data;
    return (d[at]! | (d[at + 1]! << 8) | (d[at + 2]! << 16) | (d[at + 3]! << 24)) >>> 0;
  }

  get isReply(): boolean {
    return (this.flags & FLAG_REPLY) !== 0;
  }

  #fail(field: string | number | undefined, problem: string): never {
    throw new IpcError('INVALID_MESSAGE', `${this.#path.format(field)}: ${problem}`);
  }

  #take(field: string | number, bytes: number): number {
    const at = this.#pos;
    if (at + bytes > this.#data.length)
      this.#fail(
        field,
        `needs ${bytes} bytes at offset ${at}, but the message ends at ${this.#data.length}`,
      );
    this.#pos = at + bytes;
    return at;
  }

  /** Checks that the payload was used up exactly, handles included. */
  end(): void {
    if (this.#pos !== this.#data.length)
      this.#fail(
        undefined,
        `${this.#data.length - this.#pos} unexpected bytes after the last field`,
      );
    if (this.#nextHandle !== this.#handles.length)
      this.#fail(
        undefined,
        `carries ${this.#handles.length} handles but its fields use ${this.#nextHandle}`,
      );
  }

  bool(field: string | number): boolean {
    const v = this.#data[this.#take(field, 1)]!;
    if (v > 1) this.#fail(field, `bool must be 0 or 1, got ${v}`);
    return v === 1;
  }

  u8(field: string | number): number {
    return this.#data[this.#take(field, 1)]!;
  }

  i8(field: string | number): number {
    return (this.#data[this.#take(field, 1)]! << 24) >> 24;
  }

  u16(field: string | number): number {
    const at = this.#take(field, 2);
    return this.#data[at]! | (this.#data[at + 1]! << 8);
  }

  i16(field: string | number): number {
    return (this.u16(field) << 16) >> 16;
  }

  u32(field: string | number): number {
    return this.#u32At(this.#take(field, 4));
  }

  i32(field: string | number): number {
    return this.#u32At(this.#take(field, 4)) | 0;
  }

  u64(field: string | number): bigint {
    return this.#dataView().getBigUint64(this.#take(field, 8), true);
  }

  i64(field: string | number): bigint {
    return this.#dataView().getBigInt64(this.#take(field, 8), true);
  }

  f32(field: string | number): number {
    return this.#dataView().getFloat32(this.#take(field, 4), true);
  }

  f64(field: string | number): number {
    return this.#dataView().getFloat64(this.#take(field, 8), true);
  }

  #length(field: string | number, capacity: number, unit: string, minItemBytes: number): number {
    const n = this.u32(field);
    if (n > capacity) this.#fail(field, `${n} ${unit} exceed the capacity of ${capacity}`);
    // Checked before allocating: a length the remaining bytes cannot hold is a lie.
    if (n * minItemBytes > this.#data.length - this.#pos)
      this.#fail(
        field,
        `${n} ${unit} cannot fit in the ${this.#data.length - this.#pos} bytes left`,
      );
    return n;
  }

  string(field: string | number, capacity: number): string {
    const n = this.#length(field, capacity, 'bytes', 1);
    const data = this.#data;
    const start = this.#take(field, n);
    // Short ASCII strings are the common case and a decoder call costs more than the loop.
    if (n <= 64) {
      let ascii = true;
      for (let i = start; i < start + n; i++) {
        if (data[i]! >= 0x80) {
          ascii = false;
          break;
        }
      }
      if (ascii)
        return String.fromCharCode.apply(
          null,
          data.subarray(start, start + n) as unknown as number[],
        );
    }
    try {
      return utf8.decode(data.subarray(start, start + n));
    } catch {
      return this.#fail(field, 'string is not valid UTF-8');
    }
  }

  /** A view into the received data, not a copy: the receiver owns that memory already. */
  bytes(field: string | number, capacity: number): Uint8Array {
    const n = this.#length(field, capacity, 'bytes', 1);
    const start = this.#take(field, n);
    return this.#data.subarray(start, start + n);
  }

  channel(field: string | number): Channel {
    return this.#handle(field, Channel);
  }

  pipe<E extends PipeEnd>(field: string | number, end: E): PipeEndOf<E> {
    return this.#handle<Handle>(field, pipeEndClasses[end]) as PipeEndOf<E>;
  }

  /** The next handle of the message, which must be of class `type`. */
  #handle<T extends Handle>(field: string | number, type: HandleClass<T>): T {
    const index = this.u16(field);
    if (index !== this.#nextHandle)
      this.#fail(field, `handle index ${index} out of order, expected ${this.#nextHandle}`);
    const handle = this.#handles[index];
    if (handle === undefined)
      this.#fail(
        field,
        `handle index ${index} but the message carries ${this.#handles.length} handles`,
      );
    if (!(handle instanceof type))
      this.#fail(field, `handle ${index} is a ${handle.constructor.name}, not a ${type.name}`);
    this.#nextHandle++;
    return handle;
  }

  enum<T extends number>(field: string | number, values: ReadonlySet<T>): T {
    const v = this.u32(field) as T;
    if (!values.has(v)) this.#fail(field, `${v} is not a value of the enum`);
    return v;
  }

  present(field: string | number): boolean {
    const v = this.#data[this.#take(field, 1)]!;
    if (v > 1) this.#fail(field, `presence byte must be 0 or 1, got ${v}`);
    return v === 1;
  }

  /** For the optional fields that end a message: a message that ends before one leaves it absent. */
  tailPresent(field: string | number): boolean {
    return this.#pos !== this.#data.length && this.present(field);
  }

  struct<T>(field: string | number, body: (r: Reader) => T): T {
    this.#path.push(field);
    const v = body(this);
    this.#path.pop();
    return v;
  }

  /** `minItemBytes` is the least an item can take, so a count is checked against the bytes left. */
  array<T>(
    field: string | number,
    capacity: number,
    minItemBytes: number,
    item: (r: Reader, index: number) => T,
  ): T[] {
    const n = this.#length(field, capacity, 'items', minItemBytes);
    const out: T[] = [];
    this.#path.push(field);
    for (let i = 0; i < n; i++) out.push(item(this, i));
    this.#path.pop();
    return out;
  }
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, '0');
}
