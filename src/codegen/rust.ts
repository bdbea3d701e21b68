import { dirname, join, relative } from 'node:path';
import type {
  EnumDef,
  FieldDef,
  MessageDef,
  PackageDef,
  ProtocolDef,
  TypeSpec,
} from '../idl/model.js';
import { pascalCase } from '../idl/names.js';
import { minBytes, optionalTailStart } from '../idl/size.js';
import { type GeneratedFile, hex, posix, writerMethods } from './generate.js';

/**
 * The Rust generator (`ftl-ipc gen --lang rust`): per package one module of structs, enums and
 * their `Codec` over the `ftl_ipc` crate's `wire`, and per protocol a typed blocking client and
 * a handler trait served by `ftl_ipc::rpc` (docs/rust.md). Every path into std and the crate is
 * absolute, so an IDL type called `Vec` or `Result` shadows nothing.
 */

export interface RustOptions {
  /** Folder for all outputs; by default each goes beside its IDL file. */
  readonly outDir?: string;
}

const keywords = new Set([
  ...['as', 'break', 'const', 'continue', 'else', 'enum', 'extern', 'false', 'fn', 'for'],
  ...['if', 'impl', 'in', 'let', 'loop', 'match', 'mod', 'move', 'mut', 'pub', 'ref'],
  ...['return', 'static', 'struct', 'trait', 'true', 'type', 'unsafe', 'use', 'where'],
  ...['while', 'async', 'await', 'dyn', 'abstract', 'become', 'box', 'do', 'final', 'macro'],
  ...['override', 'priv', 'typeof', 'unsized', 'virtual', 'yield', 'try'],
]);
/** Keywords that cannot be raw identifiers. */
const unraw = new Set(['self', 'super', 'crate']);

/** Methods of a generated client besides the messages' own. */
const reservedMethods = new Set(['new', 'with_options', 'rpc', 'recv', 'close', 'channel']);

function ident(name: string): string {
  if (unraw.has(name)) return `${name}_`;
  return keywords.has(name) ? `r#${name}` : name;
}

const rustPrimitives: Record<string, string> = writerMethods;

const rs = {
  type: pascalCase,
  reply: (message: string) => `${pascalCase(message)}Reply`,
  client: (protocol: string) => `${pascalCase(protocol)}Client`,
  handlers: (protocol: string) => `${pascalCase(protocol)}Handlers`,
  event: (protocol: string) => `${pascalCase(protocol)}Event`,
  serve: (protocol: string) => `serve_${protocol}`,
};

const std = {
  vec: '::std::vec::Vec',
  string: '::std::string::String',
  option: '::std::option::Option',
  result: '::ftl_ipc::Result',
};

export function rustOutputPath(pkg: PackageDef, options: RustOptions): string {
  return join(options.outDir ?? dirname(pkg.file), `${pkg.name}.rs`);
}

function docLines(doc: string | undefined, indent: string): string[] {
  if (doc === undefined) return [];
  return doc
    .trim()
    .split('\n')
    .map((l) => `${indent}/// ${l}`.trimEnd());
}

/** Whether values of a type hold a channel or pipe end (which are neither `Clone` nor comparable). */
function holdsHandles(type: TypeSpec): boolean {
  switch (type.kind) {
    case 'channel':
    case 'pipe':
      return true;
    case 'array':
      return holdsHandles(type.items);
    case 'struct':
      return type.struct.fields.some((f) => holdsHandles(f.type));
    default:
      return false;
  }
}

class RustModuleWriter {
  readonly #pkg: PackageDef;
  readonly #lines: string[] = [];

  constructor(pkg: PackageDef) {
    this.#pkg = pkg;
  }

  #emit(...lines: string[]): void {
    this.#lines.push(...lines);
  }

  #ref(def: { pkg: string }, name: string): string {
    return def.pkg === this.#pkg.name ? name : `super::${ident(def.pkg)}::${name}`;
  }

  #rsType(type: TypeSpec): string {
    switch (type.kind) {
      case 'primitive':
        return rustPrimitives[type.name]!;
      case 'string':
        return std.string;
      case 'bytes':
        return `${std.vec}<u8>`;
      case 'channel':
        return '::ftl_ipc::Channel';
      case 'pipe':
        return '::ftl_ipc::PipeEnd';
      case 'array':
        return `${std.vec}<${this.#rsType(type.items)}>`;
      case 'struct':
        return this.#ref(type.struct, rs.type(type.struct.name));
      case 'enum':
        return this.#ref(type.enum, rs.type(type.enum.name));
    }
  }

  /** A statement-free expression writing `value` (owned) as `type`, giving a `Result<()>`. */
  #write(type: TypeSpec, field: string, value: string, depth: number): string {
    switch (type.kind) {
      case 'primitive':
        return `w.${writerMethods[type.name]}(${field}, ${value})`;
      case 'string':
        return `w.string(${field}, &${value}, ${type.capacity})`;
      case 'bytes':
        return `w.bytes(${field}, &${value}, ${type.capacity})`;
      case 'channel':
        return `w.channel(${field}, ${value})`;
      case 'pipe':
        return `w.pipe(${field}, ${value}, ::ftl_ipc::wire::PipeKind::${pascalCase(type.end)})`;
      case 'enum':
        return `w.u32(${field}, ${value} as u32)`;
      case 'struct':
        return `w.structure(${field}, ${value}, ::ftl_ipc::wire::Codec::encode)`;
      case 'array': {
        const item = `item${depth}`;
        const index = `i${depth}`;
        return `w.array(${field}, ${value}, ${type.capacity}, |w, ${index}, ${item}| ${this.#write(type.items, index, item, depth + 1)})`;
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
        return `r.pipe(${field}, ::ftl_ipc::wire::PipeKind::${pascalCase(type.end)})`;
      case 'enum':
        return `r.enumeration(${field}, ${this.#rsType(type)}::from_u32)`;
      case 'struct':
        return `r.structure(${field}, <${this.#rsType(type)} as ::ftl_ipc::wire::Codec>::decode)`;
      case 'array': {
        const index = `i${depth}`;
        return `r.array(${field}, ${type.capacity}, ${minBytes(type.items)}, |r, ${index}| ${this.#read(type.items, index, depth + 1)})`;
      }
    }
  }

  /** A struct and its `Codec`; `topLevel` fields of a message may leave out their optional tail. */
  #struct(
    name: string,
    fields: readonly FieldDef[],
    doc: string | undefined,
    topLevel: boolean,
  ): void {
    const derives = fields.some((f) => holdsHandles(f.type)) ? 'Debug' : 'Clone, Debug, PartialEq';
    this.#emit('', ...docLines(doc, ''), `#[derive(${derives})]`, `pub struct ${name} {`);
    for (const f of fields) {
      const type = this.#rsType(f.type);
      this.#emit(
        ...docLines(f.doc, '    '),
        `    pub ${ident(f.name)}: ${f.optional ? `${std.option}<${type}>` : type},`,
      );
    }
    this.#emit('}');
    const tail = topLevel ? optionalTailStart(fields) : fields.length;
    this.#emit(
      '',
      `impl ::ftl_ipc::wire::Codec for ${name} {`,
      `    fn encode(self, ${fields.length === 0 ? '_w' : 'w'}: &mut ::ftl_ipc::wire::Writer) -> ${std.result}<()> {`,
    );
    fields.forEach((f, i) => {
      const value = `self.${ident(f.name)}`;
      const write = this.#write(f.type, `"${f.name}"`, 'v', 0);
      if (!f.optional) {
        this.#emit(`        ${this.#write(f.type, `"${f.name}"`, value, 0)}?;`);
        return;
      }
      const present = i >= tail ? 'tail_present' : 'present';
      this.#emit(
        `        match ${value} {`,
        `            ::std::option::Option::Some(v) => {`,
        `                w.${present}(true);`,
        `                ${write}?;`,
        '            }',
        `            ::std::option::Option::None => {`,
        `                w.${present}(false);`,
        '            }',
        '        }',
      );
    });
    this.#emit('        Ok(())', '    }', '');
    // Struct expressions evaluate their fields in source order, which is wire order.
    this.#emit(
      `    fn decode(${fields.length === 0 ? '_r' : 'r'}: &mut ::ftl_ipc::wire::Reader<'_>) -> ${std.result}<Self> {`,
      `        Ok(${name} {`,
    );
    fields.forEach((f, i) => {
      const read = this.#read(f.type, `"${f.name}"`, 0);
      if (!f.optional) this.#emit(`            ${ident(f.name)}: ${read}?,`);
      else
        this.#emit(
          `            ${ident(f.name)}: if r.${i >= tail ? 'tail_present' : 'present'}("${f.name}")? {`,
          `                ::std::option::Option::Some(${read}?)`,
          '            } else {',
          '                ::std::option::Option::None',
          '            },',
        );
    });
    this.#emit('        })', '    }', '}');
  }

  #enum(e: EnumDef): void {
    const type = rs.type(e.name);
    this.#emit(
      '',
      ...docLines(e.doc, ''),
      '#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]',
      '#[repr(u32)]',
      `pub enum ${type} {`,
      ...e.members.map((m) => `    ${pascalCase(m.name)} = ${m.value},`),
      '}',
      '',
      `impl ${type} {`,
      `    pub fn from_u32(v: u32) -> ${std.option}<${type}> {`,
      '        match v {',
      ...e.members.map(
        (m) =>
          `            ${m.value} => ::std::option::Option::Some(${type}::${pascalCase(m.name)}),`,
      ),
      '            _ => ::std::option::Option::None,',
      '        }',
      '    }',
      '}',
    );
  }

  #message(m: MessageDef): void {
    const type = rs.type(m.name);
    const qualified = `${m.pkg}.${m.protocol}.${m.name}`;
    const origin = m.kind === 'call' ? 'call from the client' : `push from the ${m.origin}`;
    this.#struct(
      type,
      m.params,
      `${qualified}: ${origin}.${m.doc === undefined ? '' : `\n\n${m.doc}`}`,
      true,
    );
    this.#emit(
      '',
      `impl ::ftl_ipc::wire::MessageType for ${type} {`,
      `    const NAME: &'static str = "${qualified}";`,
      `    const ID: u32 = ${hex(m.id)};`,
      `    const IS_CALL: bool = ${m.kind === 'call'};`,
      '}',
    );
    if (m.kind !== 'call') return;
    const reply = rs.reply(m.name);
    this.#struct(reply, m.returns ?? [], `The reply to ${qualified}.`, true);
    this.#emit(
      '',
      `impl ::ftl_ipc::wire::CallType for ${type} {`,
      `    type Reply = ${reply};`,
      `    const REPLY_ID: u32 = ${hex(m.replyId!)};`,
      '}',
    );
  }

  /** The enum of what one side receives and its decoder (a match on the type id). */
  #received(name: string, messages: readonly MessageDef[], doc: string): void {
    this.#emit('', `/// ${doc}`, '#[derive(Debug)]', `pub enum ${name} {`);
    for (const m of messages) this.#emit(`    ${rs.type(m.name)}(${rs.type(m.name)}),`);
    this.#emit('}');
  }

  #protocol(p: ProtocolDef): void {
    for (const m of p.messages) {
      for (const method of [m.name, `${m.name}_with`, `${m.name}_wait`])
        if (reservedMethods.has(method))
          throw new Error(
            `${p.pkg}.${p.name}.${m.name}: the Rust client already has a method ${method}; rename the message`,
          );
    }
    const fromClient = p.messages.filter((m) => m.origin === 'client');
    const fromServer = p.messages.filter((m) => m.origin === 'server');
    const calls = fromClient.filter((m) => m.kind === 'call');
    const clientPushes = fromClient.filter((m) => m.kind === 'push');
    const client = rs.client(p.name);
    const event = rs.event(p.name);
    const handlers = rs.handlers(p.name);
    const duration = `${std.option}<::std::time::Duration>`;

    this.#emit('', `// Protocol ${p.pkg}.${p.name}`);
    this.#received(event, fromServer, `A push the ${p.pkg}.${p.name} server sent.`);
    this.#emit(
      '',
      `impl ${event} {`,
      `    pub fn decode(${fromServer.length === 0 ? '_m' : 'm'}: ::ftl_ipc::Message) -> ${std.result}<${event}> {`,
    );
    if (fromServer.length === 0)
      this.#emit(`        ::std::result::Result::Err(::ftl_ipc::rpc::unexpected(&_m))`);
    else {
      this.#emit('        match m.type_id {');
      for (const msg of fromServer) {
        const t = rs.type(msg.name);
        this.#emit(
          `            <${t} as ::ftl_ipc::wire::MessageType>::ID => Ok(${event}::${t}(::ftl_ipc::wire::decode_message::<${t}>(m)?.1)),`,
        );
      }
      this.#emit(
        '            _ => ::std::result::Result::Err(::ftl_ipc::rpc::unexpected(&m)),',
        '        }',
      );
    }
    this.#emit('    }', '}');

    this.#emit(
      '',
      ...docLines(p.doc ?? `The client end of a channel speaking ${p.pkg}.${p.name}.`, ''),
      `pub struct ${client} {`,
      '    pub rpc: ::ftl_ipc::rpc::RpcClient,',
      '}',
      '',
      `impl ${client} {`,
      `    pub fn new(channel: ::ftl_ipc::Channel) -> ${client} {`,
      `        ${client} { rpc: ::ftl_ipc::rpc::RpcClient::new(channel, ::ftl_ipc::rpc::CallOptions::default()) }`,
      '    }',
      '',
      '    /// A client whose calls default to `options` (a timeout, say).',
      `    pub fn with_options(channel: ::ftl_ipc::Channel, options: ::ftl_ipc::rpc::CallOptions) -> ${client} {`,
      `        ${client} { rpc: ::ftl_ipc::rpc::RpcClient::new(channel, options) }`,
      '    }',
    );
    for (const m of calls) {
      const t = rs.type(m.name);
      this.#emit(
        '',
        ...docLines(m.doc ?? `Calls ${m.name} and waits for its reply.`, '    '),
        `    pub fn ${ident(m.name)}(&self, value: ${t}) -> ${std.result}<${rs.reply(m.name)}> {`,
        '        self.rpc.call(value, self.rpc.options())',
        '    }',
        '',
        `    /// Calls ${m.name} with its own options (timeout, trace context).`,
        `    pub fn ${m.name}_with(&self, value: ${t}, options: &::ftl_ipc::rpc::CallOptions) -> ${std.result}<${rs.reply(m.name)}> {`,
        '        self.rpc.call(value, options)',
        '    }',
      );
    }
    for (const m of clientPushes) {
      const t = rs.type(m.name);
      this.#emit(
        '',
        `    /// Sends ${m.name} without waiting: BACKPRESSURE at once when the server's queue is full.`,
        `    pub fn ${ident(m.name)}(&self, value: ${t}) -> ${std.result}<()> {`,
        '        self.rpc.push(value)',
        '    }',
        '',
        `    /// Sends ${m.name}, waiting up to \`timeout\` while the server's queue is full.`,
        `    pub fn ${m.name}_wait(&self, value: ${t}, timeout: ${duration}) -> ${std.result}<()> {`,
        '        self.rpc.push_wait(value, timeout)',
        '    }',
      );
    }
    this.#emit(
      '',
      '    /// The next push from the server (PEER_CLOSED once the server closed and all is read).',
      `    pub fn recv(&self, timeout: ${duration}) -> ${std.result}<${event}> {`,
      `        ${event}::decode(self.rpc.recv_event(timeout)?)`,
      '    }',
      '}',
    );

    this.#emit(
      '',
      `/// One handler per message a ${p.pkg}.${p.name} client sends; handlers run on the server's`,
      '/// worker threads, so they take `&self`.',
      `pub trait ${handlers}: ::std::marker::Send + ::std::marker::Sync + 'static {`,
    );
    for (const m of fromClient) {
      const t = rs.type(m.name);
      this.#emit(
        ...docLines(m.doc, '    '),
        m.kind === 'call'
          ? `    fn ${ident(m.name)}(&self, value: ${t}, context: &::ftl_ipc::rpc::CallContext) -> ${std.result}<${rs.reply(m.name)}>;`
          : `    fn ${ident(m.name)}(&self, value: ${t}, context: &::ftl_ipc::rpc::CallContext) -> ${std.result}<()>;`,
      );
    }
    this.#emit('}');
    const h = fromClient.length === 0 ? '_H' : 'H';
    this.#emit(
      '',
      `fn ${p.name}_is_call(type_id: u32) -> ${std.option}<bool> {`,
      '    match type_id {',
      ...fromClient.map(
        (m) =>
          `        <${rs.type(m.name)} as ::ftl_ipc::wire::MessageType>::ID => ::std::option::Option::Some(${m.kind === 'call'}),`,
      ),
      '        _ => ::std::option::Option::None,',
      '    }',
      '}',
      '',
      `fn ${p.name}_decode<${h}: ${handlers}>(m: ::ftl_ipc::Message) -> ${std.result}<::ftl_ipc::rpc::Job<${h}>> {`,
      '    match m.type_id {',
    );
    for (const m of fromClient) {
      const t = rs.type(m.name);
      const method = ident(m.name);
      this.#emit(
        `        <${t} as ::ftl_ipc::wire::MessageType>::ID => {`,
        `            let (${m.kind === 'call' ? 'txid' : '_'}, v) = ::ftl_ipc::wire::decode_message::<${t}>(m)?;`,
        m.kind === 'call'
          ? `            Ok(::ftl_ipc::rpc::Job::call::<${t}>(txid, move |h: &H, c| h.${method}(v, c)))`
          : `            Ok(::ftl_ipc::rpc::Job::push(move |h: &H, c| h.${method}(v, c)))`,
        '        }',
      );
    }
    this.#emit(
      '        _ => ::std::result::Result::Err(::ftl_ipc::rpc::unexpected(&m)),',
      '    }',
      '}',
      '',
      `/// Serves ${p.pkg}.${p.name} on \`channel\` until the client closes (options: ServeOptions).`,
      `pub fn ${rs.serve(p.name)}<H: ${handlers}>(channel: ::ftl_ipc::Channel, handlers: H, options: ::ftl_ipc::rpc::ServeOptions) -> ${std.result}<()> {`,
      `    ::ftl_ipc::rpc::serve(channel, ::std::sync::Arc::new(handlers), options, ${p.name}_is_call, ${p.name}_decode::<H>)`,
      '}',
    );
  }

  render(idlPath: string, outPath: string): string {
    const pkg = this.#pkg;
    for (const e of pkg.enums) this.#enum(e);
    for (const s of pkg.structs) this.#struct(rs.type(s.name), s.fields, s.doc, false);
    for (const p of pkg.protocols) for (const m of p.messages) this.#message(m);
    for (const p of pkg.protocols) this.#protocol(p);
    const source = posix(relative(dirname(outPath), idlPath));
    const header = [
      `// @generated by \`ftl-ipc gen --lang rust\` from ${source}. Do not edit: change the IDL and generate again.`,
      ...(pkg.doc ?? `The ${pkg.name} package.`)
        .trim()
        .split('\n')
        .map((l) => `//! ${l}`.trimEnd()),
      '#![allow(dead_code, unused_imports, clippy::all)]',
    ];
    return `${[...header, ...this.#lines].join('\n')}\n`;
  }
}

/** One Rust module per package; the text depends only on the IDL and the options. */
export function generateRust(
  packages: readonly PackageDef[],
  options: RustOptions = {},
): GeneratedFile[] {
  return packages.map((pkg) => {
    const path = rustOutputPath(pkg, options);
    return { path, text: new RustModuleWriter(pkg).render(pkg.file, path) };
  });
}
