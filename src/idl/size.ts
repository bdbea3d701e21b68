import type { FieldDef, TypeSpec } from './model.js';

const primitiveBytes = {
  bool: 1,
  int8: 1,
  uint8: 1,
  int16: 2,
  uint16: 2,
  int32: 4,
  uint32: 4,
  float32: 4,
  int64: 8,
  uint64: 8,
  float64: 8,
} as const;

/**
 * The fewest bytes a value of this type takes on the wire. Decoders check an array's count
 * against the bytes left using it, so a forged count cannot make them allocate.
 */
export function minBytes(type: TypeSpec): number {
  switch (type.kind) {
    case 'primitive':
      return primitiveBytes[type.name];
    case 'string':
    case 'bytes':
    case 'array':
    case 'enum':
      return 4;
    case 'channel':
    case 'pipe':
      return 2;
    case 'struct':
      return fieldsMinBytes(type.struct.fields);
  }
}

export function fieldsMinBytes(fields: readonly FieldDef[]): number {
  let sum = 0;
  for (const f of fields) sum += f.optional ? 1 : minBytes(f.type);
  return sum;
}

/** Fields from here to the end are all optional: the tail an encoder may leave out. */
export function optionalTailStart(fields: readonly FieldDef[]): number {
  let start = fields.length;
  while (start > 0 && fields[start - 1]!.optional) start--;
  return start;
}
