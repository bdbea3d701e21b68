import { dirname, join, relative } from 'node:path';
import type {
  EnumDef,
  FieldDef,
  MessageDef,
  PackageDef,
  ProtocolDef,
  StructDef,
  TypeSpec,
} from '../idl/model.js';
import { pascalCase } from '../idl/names.js';
import { minBytes, optionalTailStart } from '../idl/size.js';
import { type GeneratedFile, hex, posix, writerMethods } from './generate.js';

/**
 * The Python generator (`ftl-ipc gen --lang python`): per package one module of dataclasses,
 * encoders and decoders over `ftl_ipc.wire`, descriptors, and typed async clients and servers
 * over `ftl_ipc.rpc`. IDL names are already snake case, Python's own style for fields and
 * functions; only names that are Python keywords get a trailing underscore.
 */

export interface PythonOptions {
  /** Folder for all outputs (a Python package); by default each goes beside its IDL file. */
  readonly outDir?: string;
}

const keywords = new Set([
  ...['False', 'None', 'True', 'and', 'as', 'assert', 'async', 'await', 'break', 'class'],
  ...['continue', 'def', 'del', 'elif', 'else', 'except', 'finally', 'for', 'from', 'global'],
  ...['if', 'import', 'in', 'is', 'lambda', 'nonlocal', 'not', 'or', 'pass', 'raise'],
  ...['return', 'try', 'while', 'with', 'yield', 'match', 'case', 'type'],
]);

/** Method names of ftl_ipc.rpc's RpcClient and RpcServer (RESERVED_METHODS there). */
const reservedMethods = new Set([
  ...['call', 'send', 'send_wait', 'recv', 'close', 'channel', 'serve', 'dispatch', 'reply'],
  ...['reply_error', 'table', 'timeout'],
]);

/** A field, function or module name: the IDL name, kept clear of keywords. */
function ident(name: string): string {
  return keywords.has(name) ? `${name}_` : name;
}

/** The `struct` format letter of each primitive a fixed-size codec packs (bool is not: it needs a check). */
const structFormats: Partial<Record<string, string>> = {
  int8: 'b',
  int16: 'h',
  int32: 'i',
  int64: 'q',
  uint8: 'B',
  uint16: 'H',
  uint32: 'I',
  uint64: 'Q',
  float32: 'f',
  float64: 'd',
};

/** The `struct` format of a whole message (header word, txid, fields) when every field is a
 * required integer or float, else undefined. */
function fixedFormat(fields: readonly FieldDef[]): string | undefined {
  let format = '<4sI';
  for (const f of fields) {
    const letter =
      f.type.kind === 'primitive' && !f.optional ? structFormats[f.type.name] : undefined;
    if (letter === undefined) return undefined;
    format += letter;
  }
  return format;
}

const py = {
  type: pascalCase,
  reply: (message: string) => `${pascalCase(message)}Reply`,
  encode: (snake: string) => `encode_${snake}`,
  decode: (snake: string) => `decode_${snake}`,
  descriptor: (message: string) => message.toUpperCase(),
  enumValues: (enumName: string) => `${enumName.toUpperCase()}_VALUES`,
  client: (protocol: string) => `${pascalCase(protocol)}Client`,
  server: (protocol: string) => `${pascalCase(protocol)}Server`,
  handlers: (protocol: string) => `${pascalCase(protocol)}Handlers`,
  requestTable: (protocol: string) => `${protocol.toUpperCase()}_REQUESTS`,
  eventTable: (protocol: string) => `${protocol.toUpperCase()}_EVENTS`,
};

export function pythonOutputPath(pkg: PackageDef, options: PythonOptions): string {
  return join(options.outDir ?? dirname(pkg.file), `${pkg.name}.py`);
}

function docstring(doc: string | undefined, indent: string): string[] {
  if (doc === undefined) return [];
  const lines = doc.trim().replaceAll('\\', '\\\\').replaceAll('"""', '\\"\\"\\"').split('\n');
  if (lines.length === 1) return [`${indent}"""${lines[0]}"""`];
  return [
    `${indent}"""${lines[0]}`,
    ...lines.slice(1).map((l) => `${indent}${l}`.trimEnd()),
    `${indent}"""`,
  ];
}

class PythonModuleWriter {
  readonly #pkg: PackageDef;
  readonly #lines: string[] = [];

  constructor(pkg: PackageDef) {
    this.#pkg = pkg;
  }

  #emit(...lines: string[]): void {
    this.#lines.push(...lines);
  }

  #ref(def: { pkg: string }, name: string): string {
    return def.pkg === this.#pkg.name ? name : `${ident(def.pkg)}.${name}`;
  }

  #pyType(type: TypeSpec): string {
    switch (type.kind) {
      case 'primitive':
        if (type.name === 'bool') return 'bool';
        return type.name.startsWith('float') ? 'float' : 'int';
      case 'string':
        return 'str';
      case 'bytes':
        return 'bytes';
      case 'channel':
        return 'ChannelHandle';
      case 'pipe':
        return type.end === 'producer' ? 'PipeProducer' : 'PipeConsumer';
      case 'array':
        return `list[${this.#pyType(type.items)}]`;
      case 'struct':
        return this.#ref(type.struct, py.type(type.struct.name));
      case 'enum':
        return this.#ref(type.enum, py.type(type.enum.name));
    }
  }

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
        return `w.pipe(${field}, ${value}, "${type.end}")`;
      case 'enum':
        return `w.enum(${field}, ${value}, ${this.#ref(type.enum, py.enumValues(type.enum.name))})`;
      case 'struct':
        return `w.struct(${field}, ${value}, ${this.#ref(type.struct, py.encode(type.struct.name))})`;
      case 'array': {
        const item = `item${depth}`;
        const index = `i${depth}`;
        return `w.array(${field}, ${value}, ${type.capacity}, lambda w, ${item}, ${index}: ${this.#write(type.items, index, item, depth + 1)})`;
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
        return `r.pipe(${field}, "${type.end}")`;
      case 'enum':
        return `r.enum(${field}, ${this.#ref(type.enum, py.type(type.enum.name))})`;
      case 'struct':
        return `r.struct(${field}, ${this.#ref(type.struct, py.decode(type.struct.name))})`;
      case 'array': {
        const index = `i${depth}`;
        return `r.array(${field}, ${type.capacity}, ${minBytes(type.items)}, lambda r, ${index}: ${this.#read(type.items, index, depth + 1)})`;
      }
    }
  }

  /** A dataclass; keyword-only, so optional fields (default None) may sit anywhere. */
  #dataclass(name: string, fields: readonly FieldDef[], doc: string | undefined): void {
    this.#emit('', '', '@dataclass(slots=True, kw_only=True)', `class ${name}:`);
    this.#emit(...docstring(doc, '    '));
    if (fields.length === 0 && doc === undefined) this.#emit('    pass');
    for (const f of fields) {
      const type = this.#pyType(f.type);
      this.#emit(
        f.optional
          ? `    ${ident(f.name)}: ${type} | None = None`
          : `    ${ident(f.name)}: ${type}`,
        ...docstring(f.doc, '    '),
      );
    }
  }

  /** `snake` names the functions; `topLevel` fields of a message may leave out their optional tail. */
  #codec(name: string, snake: string, fields: readonly FieldDef[], topLevel: boolean): void {
    const tail = topLevel ? optionalTailStart(fields) : fields.length;
    this.#emit('', '', `def ${py.encode(snake)}(w: Writer, v: ${name}) -> None:`);
    if (fields.length === 0) this.#emit('    pass');
    fields.forEach((f, i) => {
      const value = `v.${ident(f.name)}`;
      const write = this.#write(f.type, `"${f.name}"`, value, 0);
      if (!f.optional) this.#emit(`    ${write}`);
      else
        this.#emit(
          `    if w.${i >= tail ? 'tail_present' : 'present'}(${value}):`,
          `        ${write}`,
        );
    });
    // Keyword arguments evaluate in source order, which is wire order.
    this.#emit('', '', `def ${py.decode(snake)}(r: Reader) -> ${name}:`, `    return ${name}(`);
    fields.forEach((f, i) => {
      const read = this.#read(f.type, `"${f.name}"`, 0);
      if (!f.optional) this.#emit(`        ${ident(f.name)}=${read},`);
      else
        this.#emit(
          `        ${ident(f.name)}=${read} if r.${i >= tail ? 'tail_present' : 'present'}("${f.name}") else None,`,
        );
    });
    this.#emit('    )');
  }

  /** Emits the `struct.Struct` of a fixed-size message and returns its name, if it is one. */
  #fixedLayout(snake: string, fields: readonly FieldDef[]): string | undefined {
    const format = fixedFormat(fields);
    if (format === undefined) return undefined;
    const layout = `_${snake.toUpperCase()}_FIXED`;
    this.#emit('', '', `${layout} = struct.Struct("${format}")`);
    return layout;
  }

  /** The fixed-size decoder of a message whose fields are all integers and floats (see
   * `MessageDescriptor.decode_fixed`); the descriptor lines that name it. */
  #decodeFixed(name: string, snake: string, fields: readonly FieldDef[]): string[] {
    const layout = this.#fixedLayout(snake, fields);
    if (layout === undefined) return [];
    // Locals get a prefix so that no field name can shadow `head`, `txid` or `data`.
    const locals = fields.map((f) => `f_${f.name}`);
    this.#emit(
      '',
      '',
      `def _decode_${snake}_fixed(data: bytes | bytearray, at: int = 0) -> tuple[bytes, int, ${name}]:`,
      `    head, txid${locals.map((n) => `, ${n}`).join('')} = ${layout}.unpack_from(data, at)`,
      `    return head, txid, ${name}(${fields.map((f, i) => `${ident(f.name)}=${locals[i]}`).join(', ')})`,
    );
    return [`    decode_fixed=_decode_${snake}_fixed,`, `    fixed_size=${layout}.size,`];
  }

  /** The fixed-size encoder of a reply of integers and floats (see
   * `CallDescriptor.encode_reply_fixed`); the descriptor line that names it. */
  #encodeFixed(name: string, snake: string, fields: readonly FieldDef[]): string[] {
    const layout = this.#fixedLayout(snake, fields);
    if (layout === undefined) return [];
    const names = fields.map((f) => `f_${f.name}`);
    // The class checks keep out what the Writer refuses and struct would take (bool, floats
    // for integers); struct itself refuses values out of range.
    const checks = fields.map((f, i) =>
      f.type.kind === 'primitive' && f.type.name.startsWith('float')
        ? `(${names[i]}.__class__ is float or ${names[i]}.__class__ is int)`
        : `${names[i]}.__class__ is int`,
    );
    const pack = `${layout}.pack(REPLY_HEAD, txid${names.map((n) => `, ${n}`).join('')})`;
    this.#emit('', '', `def _encode_${snake}_fixed(txid: int, v: ${name}) -> bytes | None:`);
    if (fields.length === 0) {
      this.#emit(`    return ${pack}`);
      return [`    encode_reply_fixed=_encode_${snake}_fixed,`];
    }
    this.#emit(
      '    try:',
      ...fields.map((f, i) => `        ${names[i]} = v.${ident(f.name)}`),
      `        if ${checks.join(' and ')}:`,
      `            return ${pack}`,
      '    except (AttributeError, struct.error, OverflowError):',
      '        pass',
      '    return None',
    );
    return [`    encode_reply_fixed=_encode_${snake}_fixed,`];
  }

  #enum(e: EnumDef): void {
    const type = py.type(e.name);
    this.#emit('', '', `class ${type}(IntEnum):`, ...docstring(e.doc, '    '));
    for (const m of e.members) this.#emit(`    ${m.name.toUpperCase()} = ${m.value}`);
    this.#emit('', '', `${py.enumValues(e.name)} = frozenset(${type})`);
  }

  #struct(s: StructDef): void {
    const type = py.type(s.name);
    this.#dataclass(type, s.fields, s.doc);
    this.#codec(type, s.name, s.fields, false);
  }

  #message(m: MessageDef): void {
    const type = py.type(m.name);
    const qualified = `${m.pkg}.${m.protocol}.${m.name}`;
    const origin = m.kind === 'call' ? 'call from the client' : `push from the ${m.origin}`;
    this.#dataclass(
      type,
      m.params,
      `${qualified}: ${origin}.${m.doc === undefined ? '' : `\n\n${m.doc}`}`,
    );
    this.#codec(type, m.name, m.params, true);
    const common = [
      `    name="${qualified}",`,
      `    kind="${m.name}",`,
      `    id=${hex(m.id)},`,
      `    encode=${py.encode(m.name)},`,
      `    decode=${py.decode(m.name)},`,
      ...this.#decodeFixed(type, m.name, m.params),
    ];
    if (m.kind === 'call') {
      const reply = py.reply(m.name);
      const snake = `${m.name}_reply`;
      this.#dataclass(reply, m.returns ?? [], `The reply to ${qualified}.`);
      this.#codec(reply, snake, m.returns ?? [], true);
      const fixedReply = this.#encodeFixed(reply, snake, m.returns ?? []);
      this.#emit(
        '',
        '',
        `${py.descriptor(m.name)}: CallDescriptor[${type}, ${reply}] = CallDescriptor(`,
        ...common,
        `    reply_id=${hex(m.replyId!)},`,
        `    encode_reply=${py.encode(snake)},`,
        `    decode_reply=${py.decode(snake)},`,
        ...fixedReply,
        ')',
      );
    } else {
      this.#emit(
        '',
        '',
        `${py.descriptor(m.name)}: MessageDescriptor[${type}] = MessageDescriptor(`,
        ...common,
        ')',
      );
    }
  }

  /** Typed send methods for the pushes one side originates. */
  #pushMethods(pushes: readonly MessageDef[]): void {
    for (const m of pushes) {
      const type = py.type(m.name);
      const value = m.params.length === 0 ? `value: ${type} | None = None` : `value: ${type}`;
      const arg = m.params.length === 0 ? `${type}() if value is None else value` : 'value';
      this.#emit(
        '',
        `    def ${ident(m.name)}(self, ${value}, on_full: OnFull = "throw") -> bool:`,
        `        """Sends ${m.name} without waiting; False when dropped by \`on_full\`."""`,
        `        return self.send(${py.descriptor(m.name)}, ${arg}, on_full)`,
        '',
        `    async def ${m.name}_wait(self, ${value}, timeout: float | None = None) -> None:`,
        `        """Sends ${m.name}, waiting while the peer's queue is full."""`,
        `        await self.send_wait(${py.descriptor(m.name)}, ${arg}, timeout)`,
      );
    }
  }

  #protocol(p: ProtocolDef): void {
    for (const m of p.messages) {
      if (reservedMethods.has(m.name) || reservedMethods.has(`${m.name}_wait`))
        throw new Error(
          `${p.pkg}.${p.name}.${m.name}: the Python client and server already have a method ${m.name}; rename the message`,
        );
      if (py.type(m.name) === py.descriptor(m.name))
        throw new Error(
          `${p.pkg}.${p.name}.${m.name}: its Python class and its descriptor would both be named ${py.type(m.name)}; rename the message`,
        );
    }
    const fromClient = p.messages.filter((m) => m.origin === 'client');
    const fromServer = p.messages.filter((m) => m.origin === 'server');
    const calls = fromClient.filter((m) => m.kind === 'call');
    const table = (ms: readonly MessageDef[]) =>
      `MessageTable([${ms.map((m) => py.descriptor(m.name)).join(', ')}])`;
    this.#emit('', '', `# Protocol ${p.pkg}.${p.name}`, '');
    this.#emit(`${py.requestTable(p.name)} = ${table(fromClient)}`);
    this.#emit(`${py.eventTable(p.name)} = ${table(fromServer)}`);

    this.#emit('', '', `class ${py.client(p.name)}(RpcClient):`);
    this.#emit(
      ...docstring(p.doc ?? `The client end of a channel speaking ${p.pkg}.${p.name}.`, '    '),
    );
    this.#emit(
      '',
      '    def __init__(self, channel: Channel, timeout: float | None = None) -> None:',
      `        super().__init__(channel, ${py.eventTable(p.name)}, timeout)`,
    );
    for (const m of calls) {
      this.#emit(
        '',
        `    async def ${ident(m.name)}(`,
        `        self, value: ${py.type(m.name)}, timeout: float | None = None, traceparent: str | None = None`,
        `    ) -> ${py.reply(m.name)}:`,
        ...docstring(m.doc ?? `Calls ${m.name} and waits for its reply.`, '        '),
        `        return await self.call(${py.descriptor(m.name)}, value, timeout, traceparent)`,
      );
    }
    this.#pushMethods(fromClient.filter((m) => m.kind === 'push'));

    this.#emit('', '', `class ${py.handlers(p.name)}(Protocol):`);
    this.#emit(
      `    """One handler per message a ${p.pkg}.${p.name} client sends (each may be async); a call's handler returns the reply."""`,
    );
    if (fromClient.length === 0) this.#emit('', '    pass');
    for (const m of fromClient) {
      const type = py.type(m.name);
      const signature =
        m.kind === 'call'
          ? `(self, value: ${type}, context: CallContext) -> ${py.reply(m.name)} | Awaitable[${py.reply(m.name)}]: ...`
          : `(self, value: ${type}) -> None | Awaitable[None]: ...`;
      this.#emit('', `    def ${ident(m.name)}${signature}`);
    }

    this.#emit('', '', `class ${py.server(p.name)}(RpcServer):`);
    this.#emit(`    """The server end of a channel speaking ${p.pkg}.${p.name}."""`);
    this.#emit(
      '',
      '    def __init__(self, channel: Channel) -> None:',
      `        super().__init__(channel, ${py.requestTable(p.name)})`,
      '',
      `    async def serve(self, handlers: ${py.handlers(p.name)}, **options: Any) -> None:`,
      '        """Dispatches to `handlers` until the client closes; options as RpcServer.dispatch."""',
      '        await self.dispatch(handlers, **options)',
    );
    this.#pushMethods(fromServer);
    this.#emit(
      '',
      '',
      `async def serve_${p.name}(channel: Channel, handlers: ${py.handlers(p.name)}, **options: Any) -> None:`,
      `    await ${py.server(p.name)}(channel).serve(handlers, **options)`,
    );
  }

  render(idlPath: string, outPath: string): string {
    const pkg = this.#pkg;
    for (const e of pkg.enums) this.#enum(e);
    for (const s of pkg.structs) this.#struct(s);
    for (const p of pkg.protocols) for (const m of p.messages) this.#message(m);
    for (const p of pkg.protocols) this.#protocol(p);
    const source = posix(relative(dirname(outPath), idlPath));
    const header = [
      `# @generated by \`ftl-ipc gen --lang python\` from ${source}. Do not edit: change the IDL and generate again.`,
      ...docstring(pkg.doc ?? `The ${pkg.name} package.`, ''),
      '',
      'from __future__ import annotations',
      '',
      'import struct',
      'from collections.abc import Awaitable',
      'from dataclasses import dataclass',
      'from enum import IntEnum',
      'from typing import Any, Protocol',
      '',
      'from ftl_ipc.connection import Channel, OnFull',
      'from ftl_ipc.rpc import CallContext, RpcClient, RpcServer',
      'from ftl_ipc.wire import (',
      '    CallDescriptor,',
      '    ChannelHandle,',
      '    MessageDescriptor,',
      '    MessageTable,',
      '    PipeConsumer,',
      '    PipeProducer,',
      '    Reader,',
      '    REPLY_HEAD,',
      '    Writer,',
      ')',
      ...pkg.imports.map((dep) => `from . import ${ident(dep.name)}`),
    ];
    return `${[...header, ...this.#lines].join('\n')}\n`;
  }
}

/** One Python module per package; the text depends only on the IDL and the options. */
export function generatePython(
  packages: readonly PackageDef[],
  options: PythonOptions = {},
): GeneratedFile[] {
  return packages.map((pkg) => {
    const path = pythonOutputPath(pkg, options);
    return { path, text: new PythonModuleWriter(pkg).render(pkg.file, path) };
  });
}
