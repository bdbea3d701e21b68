import { dirname, join, relative, sep } from 'node:path';
import type {
  EnumDef,
  FieldDef,
  MessageDef,
  PackageDef,
  ProtocolDef,
  StructDef,
  TypeSpec,
} from '../idl/model.js';
import { mainEntryNames, names, wireEntryNames } from '../idl/names.js';
import { minBytes, optionalTailStart } from '../idl/size.js';
import { HEADER_BYTES } from '../wire/frame.js';

export interface GenerateOptions {
  /**
   * The package generated code imports the runtime from: its main entry and its `/wire` entry.
   * Default 'ftl-ipc'.
   */
  readonly runtime?: string;
  /** Folder for all outputs; by default each goes beside its IDL file. */
  readonly outDir?: string;
}

export interface GeneratedFile {
  readonly path: string;
  readonly text: string;
}

const numberTypes = new Set([
  'int8',
  'int16',
  'int32',
  'uint8',
  'uint16',
  'uint32',
  'float32',
  'float64',
]);
export const writerMethods = {
  bool: 'bool',
  int8: 'i8',
  int16: 'i16',
  int32: 'i32',
  int64: 'i64',
  uint8: 'u8',
  uint16: 'u16',
  uint32: 'u32',
  uint64: 'u64',
  float32: 'f32',
  float64: 'f64',
} as const;

/** The most bytes a value of this type takes on the wire; every variable length has a capacity. */
function maxBytes(type: TypeSpec): number {
  switch (type.kind) {
    case 'string':
    case 'bytes':
      return 4 + type.capacity;
    case 'array':
      return 4 + type.capacity * maxBytes(type.items);
    case 'struct':
      return fieldsMaxBytes(type.struct.fields);
    default:
      return minBytes(type);
  }
}

function fieldsMaxBytes(fields: readonly FieldDef[]): number {
  let sum = 0;
  for (const f of fields) sum += (f.optional ? 1 : 0) + maxBytes(f.type);
  return sum;
}

export function outputPath(pkg: PackageDef, options: GenerateOptions): string {
  return join(options.outDir ?? dirname(pkg.file), `${pkg.name}.generated.ts`);
}

export function posix(path: string): string {
  return path.split(sep).join('/');
}

export function hex(id: number): string {
  return `0x${id.toString(16).padStart(8, '0')}`;
}

function docComment(doc: string | undefined, indent: string): string[] {
  if (doc === undefined) return [];
  const lines = doc.trim().replaceAll('*/', '*\\/').split('\n');
  if (lines.length === 1) return [`${indent}/** ${lines[0]} */`];
  return [`${indent}/**`, ...lines.map((l) => `${indent} * ${l}`.trimEnd()), `${indent} */`];
}

/** Writes one package's module; its text depends only on the IDL, so `--check` can compare. */
class ModuleWriter {
  readonly #pkg: PackageDef;
  readonly #lines: string[] = [];
  /** Runtime names this module uses, imported at the top. */
  readonly #runtime = new Set<string>();

  constructor(pkg: PackageDef) {
    this.#pkg = pkg;
  }

  #emit(...lines: string[]): void {
    this.#lines.push(...lines);
  }

  #use(name: string): string {
    if (!mainEntryNames.has(name) && !wireEntryNames.has(name))
      throw new Error(`generate.ts: ${name} is in neither entry's list in idl/names.ts`);
    this.#runtime.add(name);
    return name;
  }

  /** A struct or enum's name as this module refers to it: imported ones through their package. */
  #ref(def: { pkg: string }, name: string): string {
    return def.pkg === this.#pkg.name ? name : `${def.pkg}.${name}`;
  }

  #tsType(type: TypeSpec): string {
    switch (type.kind) {
      case 'primitive':
        if (type.name === 'bool') return 'boolean';
        return numberTypes.has(type.name) ? 'number' : 'bigint';
      case 'string':
        return 'string';
      case 'bytes':
        return 'Uint8Array';
      case 'channel':
        return this.#use('Channel');
      case 'pipe':
        return this.#use(type.end === 'producer' ? 'DataPipeProducer' : 'DataPipeConsumer');
      case 'array':
        return `${this.#tsType(type.items)}[]`;
      case 'struct':
        return this.#ref(type.struct, names.type(type.struct.name));
      case 'enum':
        return this.#ref(type.enum, names.type(type.enum.name));
    }
  }

  /** The statement (or expression, for array items) that writes `value`. */
  #write(type: TypeSpec, field: string, value: string, depth: number): string {
    switch (type.kind) {
      case 'primitive':
        return `w.${writerMethods[type.name]}(${field}, ${value})`;
      case 'string':
      case 'bytes':
        return `w.${type.kind}(${field}, ${value}, ${type.capacity})`;
      case 'channel':
        return `w.channel(${field}, ${value})`;
      case 'pipe':
        return `w.pipe(${field}, ${value}, '${type.end}')`;
      case 'enum':
        return `w.enum(${field}, ${value}, ${this.#ref(type.enum, names.enumValues(type.enum.name))})`;
      case 'struct':
        return `w.struct(${field}, ${value}, ${this.#ref(type.struct, names.encode(names.type(type.struct.name)))})`;
      case 'array': {
        // Nested arrays need their own names: item, item1, ...
        const item = depth === 0 ? 'item' : `item${depth}`;
        const index = depth === 0 ? 'i' : `i${depth}`;
        return `w.array(${field}, ${value}, ${type.capacity}, (w, ${item}, ${index}) => ${this.#write(type.items, index, item, depth + 1)})`;
      }
    }
  }

  #read(type: TypeSpec, field: string, depth: number): string {
    switch (type.kind) {
      case 'primitive':
        return `r.${writerMethods[type.name]}(${field})`;
      case 'string':
      case 'bytes':
        return `r.${type.kind}(${field}, ${type.capacity})`;
      case 'channel':
        return `r.channel(${field})`;
      case 'pipe':
        return `r.pipe(${field}, '${type.end}')`;
      case 'enum':
        return `r.enum(${field}, ${this.#ref(type.enum, names.enumValues(type.enum.name))})`;
      case 'struct':
        return `r.struct(${field}, ${this.#ref(type.struct, names.decode(names.type(type.struct.name)))})`;
      case 'array': {
        const index = depth === 0 ? 'i' : `i${depth}`;
        return `r.array(${field}, ${type.capacity}, ${minBytes(type.items)}, (r, ${index}) => ${this.#read(type.items, index, depth + 1)})`;
      }
    }
  }

  #interface(typeName: string, fields: readonly FieldDef[], doc: string | undefined): void {
    this.#emit(...docComment(doc, ''));
    if (fields.length === 0) {
      this.#emit(`export type ${typeName} = Record<string, never>;`, '');
      return;
    }
    this.#emit(`export interface ${typeName} {`);
    for (const f of fields) {
      this.#emit(
        ...docComment(f.doc, '  '),
        `  ${names.field(f.name)}${f.optional ? '?' : ''}: ${this.#tsType(f.type)};`,
      );
    }
    this.#emit('}', '');
  }

  /** Encoder and decoder; `topLevel` fields of a message may leave out their optional tail. */
  #codec(typeName: string, fields: readonly FieldDef[], topLevel: boolean): void {
    const tail = topLevel ? optionalTailStart(fields) : fields.length;
    const writer = this.#use('Writer');
    const reader = this.#use('Reader');
    if (fields.length === 0) {
      this.#emit(`export function ${names.encode(typeName)}(): void {}`, '');
      this.#emit(
        `export function ${names.decode(typeName)}(): ${typeName} {`,
        '  return {};',
        '}',
        '',
      );
      return;
    }
    this.#emit(`export function ${names.encode(typeName)}(w: ${writer}, v: ${typeName}): void {`);
    fields.forEach((f, i) => {
      const value = `v.${names.field(f.name)}`;
      const write = this.#write(f.type, `'${f.name}'`, value, 0);
      if (!f.optional) this.#emit(`  ${write};`);
      else this.#emit(`  if (w.${i >= tail ? 'tailPresent' : 'present'}(${value})) ${write};`);
    });
    this.#emit('}', '');
    // Object literals evaluate in source order, which is wire order; optional fields spread in.
    this.#emit(
      `export function ${names.decode(typeName)}(r: ${reader}): ${typeName} {`,
      '  return {',
    );
    fields.forEach((f, i) => {
      const read = this.#read(f.type, `'${f.name}'`, 0);
      const key = names.field(f.name);
      if (!f.optional) this.#emit(`    ${key}: ${read},`);
      else
        this.#emit(
          `    ...(r.${i >= tail ? 'tailPresent' : 'present'}('${f.name}') && { ${key}: ${read} }),`,
        );
    });
    this.#emit('  };', '}', '');
  }

  #enum(e: EnumDef): void {
    const type = names.type(e.name);
    this.#emit(...docComment(e.doc, ''), `export const ${type} = {`);
    for (const m of e.members) this.#emit(`  ${names.field(m.name)}: ${m.value},`);
    this.#emit('} as const;', `export type ${type} = (typeof ${type})[keyof typeof ${type}];`);
    this.#emit(
      `export const ${names.enumValues(e.name)}: ReadonlySet<${type}> = new Set(Object.values(${type}));`,
      '',
    );
  }

  #struct(s: StructDef): void {
    const type = names.type(s.name);
    this.#interface(type, s.fields, s.doc);
    this.#codec(type, s.fields, false);
  }

  #message(m: MessageDef): void {
    const type = names.type(m.name);
    const qualified = `${m.pkg}.${m.protocol}.${m.name}`;
    const origin = m.kind === 'call' ? 'call from the client' : `push from the ${m.origin}`;
    this.#interface(
      type,
      m.params,
      `${qualified}: ${origin}.${m.doc === undefined ? '' : `\n${m.doc}`}`,
    );
    this.#codec(type, m.params, true);
    if (m.kind === 'call') {
      const reply = names.reply(m.name);
      this.#interface(reply, m.returns ?? [], `The reply to ${qualified}.`);
      this.#codec(reply, m.returns ?? [], true);
      this.#emit(
        `export const ${names.descriptor(m.name)}: ${this.#use('CallDescriptor')}<${type}, ${reply}> = {`,
      );
    } else {
      this.#emit(
        `export const ${names.descriptor(m.name)}: ${this.#use('MessageDescriptor')}<${type}> = {`,
      );
    }
    this.#emit(
      `  name: '${qualified}',`,
      `  kind: '${names.method(m.name)}',`,
      `  id: ${hex(m.id)},`,
      `  encode: ${names.encode(type)},`,
      `  decode: ${names.decode(type)},`,
    );
    if (m.kind === 'call') {
      const reply = names.reply(m.name);
      this.#emit(
        `  replyId: ${hex(m.replyId!)},`,
        `  encodeReply: ${names.encode(reply)},`,
        `  decodeReply: ${names.decode(reply)},`,
        `  maxReplyBytes: ${HEADER_BYTES + fieldsMaxBytes(m.returns ?? [])},`,
      );
    }
    this.#emit('};', '');
  }

  #union(
    name: string,
    tableName: string,
    messages: readonly MessageDef[],
    withTxid: boolean,
    doc: string,
  ): void {
    const txid = withTxid ? ' readonly txid: number;' : '';
    const members = messages.map(
      (m) =>
        `{ readonly kind: '${names.method(m.name)}';${txid} readonly value: ${names.type(m.name)} }`,
    );
    this.#emit(`/** ${doc} */`);
    if (members.length === 0) this.#emit(`export type ${name} = never;`);
    else
      this.#emit(
        `export type ${name} =`,
        ...members.map((m, i) => `  | ${m}${i === members.length - 1 ? ';' : ''}`),
      );
    const table = this.#use('MessageTable');
    this.#emit(
      `const ${tableName} = new ${table}<${name}>([${messages.map((m) => names.descriptor(m.name)).join(', ')}]);`,
      '',
    );
  }

  /** Typed send methods for the pushes one side originates. */
  #pushMethods(pushes: readonly MessageDef[]): void {
    for (const m of pushes) {
      const type = names.type(m.name);
      const param = m.params.length === 0 ? `value: ${type} = {}` : `value: ${type}`;
      this.#emit(
        '',
        ...docComment(`Sends ${m.name} without waiting; false when dropped by \`onFull\`.`, '  '),
        `  ${names.method(m.name)}(${param}, options?: ${this.#use('SendOptions')}): boolean {`,
        `    return this.send(${names.descriptor(m.name)}, value, options);`,
        '  }',
        '',
        ...docComment(`Sends ${m.name}, waiting while the peer's queue is full.`, '  '),
        `  ${names.waitMethod(m.name)}(${param}, options?: ${this.#use('WaitOptions')}): Promise<void> {`,
        `    return this.sendWait(${names.descriptor(m.name)}, value, options);`,
        '  }',
      );
    }
  }

  #protocol(p: ProtocolDef): void {
    const fromClient = p.messages.filter((m) => m.origin === 'client');
    const fromServer = p.messages.filter((m) => m.origin === 'server');
    const channel = this.#use('Channel');
    const request = names.toServer(p.name);
    const event = names.toClient(p.name);
    this.#emit(`// Protocol ${p.pkg}.${p.name}`, '');
    this.#union(
      request,
      names.requestTable(p.name),
      fromClient,
      true,
      `What a ${p.pkg}.${p.name} server receives.`,
    );
    this.#union(
      event,
      names.eventTable(p.name),
      fromServer,
      false,
      `What a ${p.pkg}.${p.name} client receives.`,
    );

    this.#emit(
      ...docComment(p.doc ?? `The client end of a channel speaking ${p.pkg}.${p.name}.`, ''),
    );
    this.#emit(
      `export class ${names.client(p.name)} extends ${this.#use('ProtocolClient')}<${event}> {`,
    );
    // Over a channel or over a pool of them: the same methods, so code using it does not change.
    this.#emit(
      `  constructor(target: ${channel} | ${this.#use('CallRouter')}<${event}>, options?: ${this.#use('ClientOptions')}) {`,
      `    super(target, ${names.eventTable(p.name)}, options);`,
      '  }',
    );
    for (const m of fromClient.filter((m) => m.kind === 'call')) {
      const reply = names.reply(m.name);
      this.#emit(
        '',
        ...docComment(m.doc ?? `Calls ${m.name} and waits for its reply.`, '  '),
        `  ${names.method(m.name)}(value: ${names.type(m.name)}, options?: ${this.#use('CallOptions')}): Promise<${reply}> {`,
        `    return this.call(${names.descriptor(m.name)}, value, options);`,
        '  }',
      );
    }
    this.#pushMethods(fromClient.filter((m) => m.kind === 'push'));
    this.#emit('}', '');

    if (fromClient.length > 0) {
      this.#emit(
        `/** One handler per message a ${p.pkg}.${p.name} client sends; a call's handler returns the reply. */`,
      );
      this.#emit(`export interface ${names.handlers(p.name)} {`);
      for (const m of fromClient) {
        const result = m.kind === 'call' ? names.reply(m.name) : 'void';
        // A handler that ignores the context still fits: it may declare fewer parameters.
        const context = m.kind === 'call' ? `, context: ${this.#use('CallContext')}` : '';
        this.#emit(
          `  ${names.method(m.name)}(value: ${names.type(m.name)}${context}): ${result} | Promise<${result}>;`,
        );
      }
      this.#emit('}', '');
    }
    this.#emit(`/** The server end of a channel speaking ${p.pkg}.${p.name}. */`);
    this.#emit(
      `export class ${names.server(p.name)} extends ${this.#use('RpcServer')}<${request}> {`,
    );
    this.#emit(
      `  constructor(channel: ${channel}) {`,
      `    super(channel, ${names.requestTable(p.name)});`,
      '  }',
    );
    if (fromClient.length > 0) {
      const options = this.#use('ServeOptions');
      this.#emit(
        '',
        '  /** Dispatches to `handlers` until the client closes; see ServeOptions for invalid input and failures. */',
        `  serve(handlers: ${names.handlers(p.name)}, options?: ${options}): Promise<void> {`,
        '    return this.dispatch(handlers, options);',
        '  }',
      );
    }
    this.#pushMethods(fromServer);
    this.#emit('}', '');
    if (fromClient.length > 0) {
      const options = this.#use('ServeOptions');
      this.#emit(
        `export function ${names.serve(p.name)}(channel: ${channel}, handlers: ${names.handlers(p.name)}, options?: ${options}): Promise<void> {`,
        `  return new ${names.server(p.name)}(channel).serve(handlers, options);`,
        '}',
        '',
      );
    }
  }

  render(
    idlPath: string,
    outPath: string,
    runtime: string,
    importPath: (pkg: PackageDef) => string,
  ): string {
    const pkg = this.#pkg;
    for (const e of pkg.enums) this.#enum(e);
    for (const s of pkg.structs) this.#struct(s);
    for (const p of pkg.protocols) for (const m of p.messages) this.#message(m);
    for (const p of pkg.protocols) this.#protocol(p);
    // Classes and MessageTable are values; every other runtime name is a type.
    const values = new Set(['MessageTable', 'ProtocolClient', 'RpcServer']);
    const used = [...this.#runtime].sort();
    const importFrom = (entry: ReadonlySet<string>, from: string) => {
      const specifiers = used.filter((n) => entry.has(n));
      if (specifiers.length === 0) return [];
      if (!specifiers.some((n) => values.has(n)))
        return ['import type {', ...specifiers.map((n) => `  ${n},`), `} from '${from}';`];
      return [
        'import {',
        ...specifiers.map((n) => `  ${values.has(n) ? n : `type ${n}`},`),
        `} from '${from}';`,
      ];
    };
    const source = posix(relative(dirname(outPath), idlPath));
    const header = [
      `// @generated by \`ftl-ipc gen\` from ${source}. Do not edit: change the IDL and generate again.`,
      ...docComment(pkg.doc, ''),
      '',
      ...importFrom(mainEntryNames, runtime),
      ...importFrom(wireEntryNames, `${runtime}/wire`),
      ...pkg.imports.map((dep) => `import * as ${dep.name} from '${importPath(dep)}';`),
      '',
    ];
    while (this.#lines.at(-1) === '') this.#lines.pop();
    return `${[...header, ...this.#lines].join('\n')}\n`;
  }
}

/** Generates one module per package. Output depends only on the IDL and the options. */
export function generate(
  packages: readonly PackageDef[],
  options: GenerateOptions = {},
): GeneratedFile[] {
  const runtime = options.runtime ?? 'ftl-ipc';
  return packages.map((pkg) => {
    const path = outputPath(pkg, options);
    const importPath = (dep: PackageDef) => {
      const rel = posix(relative(dirname(path), outputPath(dep, options))).replace(/\.ts$/, '.js');
      return rel.startsWith('.') ? rel : `./${rel}`;
    };
    return { path, text: new ModuleWriter(pkg).render(pkg.file, path, runtime, importPath) };
  });
}
