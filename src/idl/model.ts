/**
 * The checked form of an IDL file. Everything here is resolved: type references point at their
 * definitions, ids are computed, and names are known to be unique.
 */

/** Where a definition came from, kept so later checks can point at the source. */
export interface Span {
  readonly file: string;
  readonly start: number;
  readonly end: number;
}

export type PrimitiveName =
  | 'bool'
  | 'int8'
  | 'int16'
  | 'int32'
  | 'int64'
  | 'uint8'
  | 'uint16'
  | 'uint32'
  | 'uint64'
  | 'float32'
  | 'float64';

export const primitiveNames: readonly PrimitiveName[] = [
  'bool',
  'int8',
  'int16',
  'int32',
  'int64',
  'uint8',
  'uint16',
  'uint32',
  'uint64',
  'float32',
  'float64',
];

/** Which end of a data pipe a `pipe` field carries. */
export type PipeEnd = 'producer' | 'consumer';

export const pipeEnds: readonly PipeEnd[] = ['producer', 'consumer'];

export type TypeSpec =
  | { readonly kind: 'primitive'; readonly name: PrimitiveName }
  | { readonly kind: 'string'; readonly capacity: number }
  | { readonly kind: 'bytes'; readonly capacity: number }
  | { readonly kind: 'channel'; readonly protocol: ProtocolDef | undefined }
  | { readonly kind: 'pipe'; readonly end: PipeEnd }
  | { readonly kind: 'array'; readonly capacity: number; readonly items: TypeSpec }
  | { readonly kind: 'struct'; readonly struct: StructDef }
  | { readonly kind: 'enum'; readonly enum: EnumDef };

export interface FieldDef {
  readonly name: string;
  readonly type: TypeSpec;
  readonly optional: boolean;
  readonly doc: string | undefined;
  readonly span: Span;
}

export interface StructDef {
  readonly pkg: string;
  readonly name: string;
  readonly fields: FieldDef[];
  readonly doc: string | undefined;
  readonly span: Span;
}

export interface EnumMember {
  readonly name: string;
  readonly value: number;
}

export interface EnumDef {
  readonly pkg: string;
  readonly name: string;
  readonly members: EnumMember[];
  readonly doc: string | undefined;
  readonly span: Span;
}

export interface MessageDef {
  readonly pkg: string;
  readonly protocol: string;
  readonly name: string;
  readonly kind: 'call' | 'push';
  /** Which end sends it: calls always come from the client. */
  readonly origin: 'client' | 'server';
  readonly id: number;
  /** The reply's type id; calls only. */
  readonly replyId: number | undefined;
  readonly params: FieldDef[];
  /** The reply's fields; calls only. */
  readonly returns: FieldDef[] | undefined;
  readonly doc: string | undefined;
  readonly span: Span;
}

export interface ProtocolDef {
  readonly pkg: string;
  readonly name: string;
  readonly messages: MessageDef[];
  readonly doc: string | undefined;
  readonly span: Span;
}

export interface PackageDef {
  readonly name: string;
  /** The file it was read from, as given to the loader. */
  readonly file: string;
  readonly doc: string | undefined;
  readonly imports: PackageDef[];
  readonly structs: StructDef[];
  readonly enums: EnumDef[];
  readonly protocols: ProtocolDef[];
}
