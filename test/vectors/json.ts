/**
 * Reads the language-neutral JSON of test vectors into values of the generated types:
 * 64-bit integers are decimal strings, bytes are hex strings, non-finite floats are the strings
 * "NaN", "Infinity" and "-Infinity", and a channel or pipe end is `{ "handle": index }`.
 */
import { fileURLToPath } from 'node:url';
import { Channel, DataPipe, type Handle } from 'ftl-ipc';
import type { FieldDef, PackageDef, TypeSpec } from '../../src/idl/index.js';
import { loadIdlOrThrow } from '../../src/idl/index.js';
import type { ReadFile } from '../../src/idl/load.js';
import { camelCase } from '../../src/idl/names.js';

export const vectorsDir = fileURLToPath(new URL('../../../test/vectors/', import.meta.url));

export function loadVectorSchema(readFile?: ReadFile): PackageDef[] {
  return loadIdlOrThrow([`${vectorsDir}vectors.yaml`], readFile);
}

export function hexToBytes(hex: string): Uint8Array {
  const clean = hex.replace(/\s+/g, '');
  return Uint8Array.from(clean.match(/../g) ?? [], (b) => Number.parseInt(b, 16));
}

export function bytesToHex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

function fromJsonType(type: TypeSpec, json: unknown, handles: readonly Handle[]): unknown {
  switch (type.kind) {
    case 'primitive':
      if (type.name === 'int64' || type.name === 'uint64') return BigInt(json as string);
      if (typeof json === 'string') return Number(json);
      return json;
    case 'bytes':
      return hexToBytes(json as string);
    case 'channel':
    case 'pipe':
      return handles[(json as { handle: number }).handle];
    case 'array':
      return (json as unknown[]).map((item) => fromJsonType(type.items, item, handles));
    case 'struct':
      return fromJson(type.struct.fields, json as Record<string, unknown>, handles);
    case 'string':
    case 'enum':
      return json;
  }
}

export function fromJson(
  fields: readonly FieldDef[],
  json: Record<string, unknown>,
  handles: readonly Handle[],
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of fields) {
    if (f.name in json) out[camelCase(f.name)] = fromJsonType(f.type, json[f.name], handles);
  }
  return out;
}

/** What a vector's message carries in its `handles`, in order. */
export type HandleKind = 'channel' | 'producer' | 'consumer';

/** Live handles of the kinds listed: the other ends are dropped. */
export function handlesOf(kinds: readonly HandleKind[]): Handle[] {
  return kinds.map((kind) => {
    if (kind === 'channel') return Channel.pair()[0];
    const [producer, consumer] = DataPipe.create({ capacityBytes: 1 });
    return kind === 'producer' ? producer : consumer;
  });
}

export interface ValidVector {
  readonly name: string;
  readonly message: string;
  readonly reply?: boolean;
  readonly txid?: number;
  readonly handles?: readonly HandleKind[];
  readonly value?: Record<string, unknown>;
  readonly error?: { code: string; text: string };
  readonly type: string;
  readonly flags: number;
  readonly hex: string;
}

export interface InvalidVector {
  readonly name: string;
  readonly message: string;
  readonly handles?: readonly HandleKind[];
  readonly hex: string;
  /** The field path the error must name. */
  readonly path: string;
}

export interface Vectors {
  readonly valid: ValidVector[];
  readonly invalid: InvalidVector[];
}
