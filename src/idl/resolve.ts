import type { Diagnostic, DiagnosticCode } from './diagnostics.js';
import { fnv1a32, messageIdName, replyIdName } from './ids.js';
import type {
  EnumDef,
  FieldDef,
  PackageDef,
  PrimitiveName,
  ProtocolDef,
  StructDef,
  TypeSpec,
} from './model.js';
import { pipeEnds, primitiveNames } from './model.js';
import { memberNames, names, reservedPackageNames, runtimeNames } from './names.js';
import type { Located, RawField, RawFile, RawType } from './parse.js';
import { fieldsMinBytes } from './size.js';

export interface LoadedFile {
  readonly raw: RawFile;
  readonly imports: readonly RawFile[];
}

/** Names met so far, with where, to report a duplicate at its second place. */
type Seen = Map<string, { file: RawFile; at: Located<string> }>;

interface Scope {
  readonly structs: Map<string, StructDef>;
  readonly enums: Map<string, EnumDef>;
  readonly protocols: Map<string, ProtocolDef>;
}

class Resolver {
  readonly #diagnostics: Diagnostic[];
  readonly #scopes = new Map<string, Scope>();
  #file: RawFile | undefined;
  /** Arrays of structs, checked once every struct has its fields. */
  readonly #structItems: { file: RawFile; items: StructDef; at: Located<string> }[] = [];

  constructor(diagnostics: Diagnostic[]) {
    this.#diagnostics = diagnostics;
  }

  #report(
    at: { start: number; end: number },
    code: DiagnosticCode,
    message: string,
    file = this.#file!,
  ): void {
    this.#diagnostics.push(file.source.diagnostic(code, message, at.start, at.end));
  }

  #where(file: RawFile, at: { start: number }): string {
    const d = file.source.diagnostic('IDL_DUPLICATE_NAME', '', at.start, at.start);
    return `${d.file}:${d.line}:${d.col}`;
  }

  /** Adds `name` to `seen`, reporting a duplicate at its second use. */
  #unique(seen: Seen, key: string, at: Located<string>, what: string): boolean {
    const first = seen.get(key);
    if (first) {
      this.#report(
        at,
        'IDL_DUPLICATE_NAME',
        `duplicate ${what} "${key}", first defined at ${this.#where(first.file, first.at)}`,
      );
      return false;
    }
    seen.set(key, { file: this.#file!, at });
    return true;
  }

  resolve(files: readonly LoadedFile[]): PackageDef[] {
    const packages: Seen = new Map();
    // A file whose package name is missing, reserved or taken is still resolved, under a name
    // no package can have (with a space), so the rest of its problems are reported in this pass.
    const declared = files.map(({ raw }, i) => {
      this.#file = raw;
      const name = raw.name.value;
      let usableName = name !== '';
      if (usableName && reservedPackageNames.includes(name)) {
        this.#report(
          raw.name,
          'IDL_BAD_NAME',
          `package name "${name}" is reserved in generated code; choose another`,
        );
        usableName = false;
      } else if (usableName) {
        usableName = this.#unique(packages, name, raw.name, 'package name');
      }
      return this.#declare(raw, usableName ? name : `${name} (file ${i})`);
    });
    const byRaw = new Map(files.map((file, i) => [file.raw, declared[i]!]));
    for (const file of files) {
      this.#file = file.raw;
      const pkg = byRaw.get(file.raw)!;
      for (const imported of file.imports) {
        const dep = byRaw.get(imported);
        if (dep) pkg.imports.push(dep);
      }
      this.#define(file.raw, pkg);
    }
    const before = this.#diagnostics.length;
    this.#checkRecursion(
      files.map((f) => byRaw.get(f.raw)!),
      new Map(files.map((f) => [byRaw.get(f.raw)!, f.raw])),
    );
    // Sizes of recursive structs are unbounded, so only measure when there are none.
    if (this.#diagnostics.length === before) {
      for (const { file, items, at } of this.#structItems) {
        // Zero-byte items would let a short message claim billions of them.
        if (fieldsMinBytes(items.fields) === 0) {
          this.#report(
            at,
            'IDL_BAD_VALUE',
            `array items of struct "${items.name}" take no bytes; give the struct a field`,
            file,
          );
        }
      }
    }
    this.#assignIds(files, byRaw);
    for (const file of files) {
      this.#file = file.raw;
      this.#checkGeneratedNames(byRaw.get(file.raw)!);
    }
    return declared;
  }

  /** Creates every definition with empty bodies first, so references can point across files. */
  #declare(raw: RawFile, pkg: string): PackageDef {
    this.#file = raw;
    const span = (at: Located<string>) => ({ file: raw.source.path, start: at.start, end: at.end });
    const typeNames: Seen = new Map();
    const scope: Scope = { structs: new Map(), enums: new Map(), protocols: new Map() };
    for (const s of raw.structs) {
      if (!this.#unique(typeNames, s.name.value, s.name, 'type name')) continue;
      scope.structs.set(s.name.value, {
        pkg,
        name: s.name.value,
        fields: [],
        doc: s.doc,
        span: span(s.name),
      });
    }
    for (const e of raw.enums) {
      if (!this.#unique(typeNames, e.name.value, e.name, 'type name')) continue;
      const memberNames: Seen = new Map();
      const values: Seen = new Map();
      const members = e.members.filter(
        (m) =>
          this.#unique(memberNames, m.name.value, m.name, `value name in enum "${e.name.value}"`) &&
          this.#unique(
            values,
            String(m.value.value),
            { ...m.value, value: String(m.value.value) },
            `value in enum "${e.name.value}"`,
          ),
      );
      scope.enums.set(e.name.value, {
        pkg,
        name: e.name.value,
        members: members.map((m) => ({ name: m.name.value, value: m.value.value })),
        doc: e.doc,
        span: span(e.name),
      });
    }
    const protocolNames: Seen = new Map();
    for (const p of raw.protocols) {
      if (!this.#unique(protocolNames, p.name.value, p.name, 'protocol name')) continue;
      scope.protocols.set(p.name.value, {
        pkg,
        name: p.name.value,
        messages: [],
        doc: p.doc,
        span: span(p.name),
      });
    }
    this.#scopes.set(pkg, scope);
    return {
      name: pkg,
      file: raw.source.path,
      doc: raw.doc,
      imports: [],
      structs: [...scope.structs.values()],
      enums: [...scope.enums.values()],
      protocols: [...scope.protocols.values()],
    };
  }

  #define(raw: RawFile, pkg: PackageDef): void {
    const scope = this.#scopes.get(pkg.name)!;
    for (const s of raw.structs) {
      const def = scope.structs.get(s.name.value);
      if (def?.span.start === s.name.start)
        def.fields.push(...this.#fields(s.fields, pkg, `struct "${s.name.value}"`));
    }
    // Message names are unique per file, not per protocol, because they name generated types.
    const messageNames: Seen = new Map();
    for (const p of raw.protocols) {
      const def = scope.protocols.get(p.name.value);
      if (def?.span.start !== p.name.start) continue;
      for (const m of p.messages) {
        if (!this.#unique(messageNames, m.name.value, m.name, 'message name')) continue;
        def.messages.push({
          pkg: pkg.name,
          protocol: p.name.value,
          name: m.name.value,
          kind: m.kind,
          origin: m.origin,
          id: m.id?.value ?? 0,
          replyId: m.kind === 'call' ? (m.replyId?.value ?? 0) : undefined,
          params: this.#fields(m.params, pkg, `message "${m.name.value}"`),
          returns: m.returns && this.#fields(m.returns, pkg, `reply of "${m.name.value}"`),
          doc: m.doc,
          span: { file: raw.source.path, start: m.name.start, end: m.name.end },
        });
      }
    }
  }

  #fields(fields: readonly RawField[], pkg: PackageDef, what: string): FieldDef[] {
    const seen: Seen = new Map();
    const out: FieldDef[] = [];
    for (const f of fields) {
      // Two IDL names can map to one property name (a_b1, a_b_1), so compare the generated one.
      if (!this.#unique(seen, names.field(f.name.value), f.name, `field in ${what}`)) continue;
      const type = this.#type(f.spec, pkg);
      if (!type) continue;
      out.push({
        name: f.name.value,
        type,
        optional: f.optional,
        doc: f.doc,
        span: { file: this.#file!.source.path, start: f.name.start, end: f.name.end },
      });
    }
    return out;
  }

  #type(spec: RawType, pkg: PackageDef): TypeSpec | undefined {
    const name = spec.type.value;
    const builtins = [...primitiveNames, 'string', 'bytes', 'channel', 'pipe', 'array'];
    const struct = this.#lookup(spec.type, pkg, (s) => s.structs);
    const enumDef = this.#lookup(spec.type, pkg, (s) => s.enums);
    if (!builtins.includes(name) && !struct && !enumDef) {
      // A typo: the keys beside it (capacity, items, ...) would only draw follow-on errors.
      this.#report(
        spec.type,
        'IDL_UNKNOWN_TYPE',
        `unknown type "${name}"; built-in types are ${builtins.join(', ')}${this.#known(pkg, (s) => new Map<string, unknown>([...s.structs, ...s.enums]))}`,
      );
      return undefined;
    }
    const needsCapacity = name === 'string' || name === 'bytes' || name === 'array';
    if (needsCapacity && !spec.capacity) {
      const unit = name === 'array' ? 'items' : 'bytes';
      this.#report(
        spec.type,
        'IDL_MISSING_CAPACITY',
        `type "${name}" needs "capacity", its maximum length in ${unit}`,
      );
    }
    if (!needsCapacity && spec.capacity) {
      this.#report(
        spec.capacity,
        'IDL_BAD_VALUE',
        `"capacity" applies to string, bytes and array, not to "${name}"`,
      );
    }
    for (const [key, at, owner] of [
      ['protocol', spec.protocol, 'channel'],
      ['end', spec.end, 'pipe'],
    ] as const) {
      if (name !== owner && at)
        this.#report(at, 'IDL_BAD_VALUE', `"${key}" applies to ${owner}, not to "${name}"`);
    }
    if (name !== 'array' && spec.items) {
      this.#report(spec.type, 'IDL_BAD_VALUE', `"items" applies to array, not to "${name}"`);
    }
    const capacity = spec.capacity?.value ?? 0;
    switch (name) {
      case 'string':
      case 'bytes':
        return spec.capacity ? { kind: name, capacity } : undefined;
      case 'channel': {
        if (!spec.protocol) return { kind: 'channel', protocol: undefined };
        const protocol = this.#lookup(spec.protocol, pkg, (s) => s.protocols);
        if (!protocol)
          this.#report(
            spec.protocol,
            'IDL_UNKNOWN_PROTOCOL',
            `unknown protocol "${spec.protocol.value}"${this.#known(pkg, (s) => s.protocols)}`,
          );
        return protocol && { kind: 'channel', protocol };
      }
      case 'pipe': {
        if (!spec.end) {
          this.#report(
            spec.type,
            'IDL_MISSING_KEY',
            `type "pipe" needs "end", the end that travels in the message: ${pipeEnds.join(' or ')}`,
          );
          return undefined;
        }
        const end = pipeEnds.find((e) => e === spec.end!.value);
        if (!end)
          this.#report(
            spec.end,
            'IDL_BAD_VALUE',
            `"end" must be one of ${pipeEnds.join(', ')}, not ${JSON.stringify(spec.end.value)}`,
          );
        return end && { kind: 'pipe', end };
      }
      case 'array': {
        if (!spec.items) {
          this.#report(
            spec.type,
            'IDL_MISSING_KEY',
            'type "array" needs "items", the type of its elements',
          );
          return undefined;
        }
        const items = this.#type(spec.items, pkg);
        if (items?.kind === 'struct')
          this.#structItems.push({ file: this.#file!, items: items.struct, at: spec.items.type });
        return items && spec.capacity ? { kind: 'array', capacity, items } : undefined;
      }
    }
    if ((primitiveNames as readonly string[]).includes(name))
      return { kind: 'primitive', name: name as PrimitiveName };
    if (struct) return { kind: 'struct', struct };
    return enumDef && { kind: 'enum', enum: enumDef };
  }

  /** `name` is local to the package; `other.name` names a definition in a direct import. */
  #lookup<T>(
    ref: Located<string>,
    pkg: PackageDef,
    table: (scope: Scope) => Map<string, T>,
  ): T | undefined {
    const dot = ref.value.indexOf('.');
    if (dot < 0) return table(this.#scopes.get(pkg.name)!).get(ref.value);
    const owner = ref.value.slice(0, dot);
    if (!pkg.imports.some((p) => p.name === owner)) return undefined;
    return table(this.#scopes.get(owner)!).get(ref.value.slice(dot + 1));
  }

  #known(pkg: PackageDef, table: (scope: Scope) => Map<string, unknown>): string {
    const local = [...table(this.#scopes.get(pkg.name)!).keys()];
    const imported = pkg.imports.flatMap((p) =>
      [...table(this.#scopes.get(p.name)!).keys()].map((n) => `${p.name}.${n}`),
    );
    const all = [...local, ...imported];
    return all.length > 0 ? `; defined here: ${all.join(', ')}` : '';
  }

  /** A struct that contains itself, even through arrays or optionals, would let decode recurse without bound. */
  #checkRecursion(packages: readonly PackageDef[], files: Map<PackageDef, RawFile>): void {
    const done = new Set<StructDef>();
    const visit = (struct: StructDef, path: StructDef[]): void => {
      if (done.has(struct)) return;
      if (path.includes(struct)) {
        const cycle = [...path.slice(path.indexOf(struct)), struct]
          .map((s) => `${s.pkg}.${s.name}`)
          .join(' -> ');
        const file = [...files.entries()].find(([p]) => p.name === struct.pkg)![1];
        this.#report(
          struct.span,
          'IDL_RECURSIVE_STRUCT',
          `struct "${struct.name}" contains itself (${cycle}); messages must have a bounded depth`,
          file,
        );
        done.add(struct);
        return;
      }
      for (const field of struct.fields) {
        const inner = structOf(field.type);
        if (inner) visit(inner, [...path, struct]);
      }
      done.add(struct);
    };
    for (const pkg of packages) for (const struct of pkg.structs) visit(struct, []);
  }

  #assignIds(files: readonly LoadedFile[], byRaw: Map<RawFile, PackageDef>): void {
    const seen = new Map<number, { file: RawFile; at: Located<string>; what: string }>();
    const claim = (
      id: number,
      what: string,
      at: Located<string> | { start: number; end: number },
    ) => {
      const first = seen.get(id);
      const hex = `0x${id.toString(16).padStart(8, '0')}`;
      if (id === 0) {
        this.#report(
          at,
          'IDL_ID_COLLISION',
          `${what} hashes to the reserved id 0; give it an explicit "id"`,
        );
      } else if (first) {
        this.#report(
          at,
          'IDL_ID_COLLISION',
          `type id ${hex} of ${what} collides with ${first.what} at ${this.#where(first.file, first.at)}; give one an explicit id`,
        );
      } else {
        seen.set(id, { file: this.#file!, at: { value: what, ...at }, what });
      }
    };
    for (const file of files) {
      this.#file = file.raw;
      const pkg = byRaw.get(file.raw)!;
      for (const p of file.raw.protocols) {
        const protocol = pkg.protocols.find(
          (d) => d.name === p.name.value && d.span.start === p.name.start,
        );
        for (const m of p.messages) {
          const def = protocol?.messages.find(
            (d) => d.name === m.name.value && d.span.start === m.name.start,
          );
          if (!def) continue;
          const mutable = def as { id: number; replyId: number | undefined };
          mutable.id = m.id?.value ?? fnv1a32(messageIdName(pkg.name, p.name.value, m.name.value));
          claim(
            def.id,
            `message ${messageIdName(pkg.name, p.name.value, m.name.value)}`,
            m.id ?? m.name,
          );
          if (def.kind === 'call') {
            mutable.replyId =
              m.replyId?.value ?? fnv1a32(replyIdName(pkg.name, p.name.value, m.name.value));
            claim(
              mutable.replyId,
              `reply ${replyIdName(pkg.name, p.name.value, m.name.value)}`,
              m.replyId ?? m.name,
            );
          }
        }
      }
    }
  }

  /** Generated modules export one flat set of identifiers; two IDL names must not map to one. */
  #checkGeneratedNames(pkg: PackageDef): void {
    const seen = new Map<string, string>(
      [...runtimeNames, ...pkg.imports.map((p) => p.name)].map((n) => [
        n,
        'the runtime or an import',
      ]),
    );
    const reported = new Set<string>();
    const claim = (identifier: string, owner: string, at: { start: number; end: number }) => {
      const first = seen.get(identifier);
      if (first !== undefined && first !== owner) {
        // One report per pair of clashing definitions, not one per identifier they share.
        if (!reported.has(`${owner}\n${first}`)) {
          reported.add(`${owner}\n${first}`);
          this.#report(
            at,
            'IDL_DUPLICATE_NAME',
            `${owner} would generate "${identifier}", which ${first} already uses; rename one`,
          );
        }
      } else {
        seen.set(identifier, owner);
      }
    };
    const spanOf = (def: { span: { start: number; end: number } }) => def.span;
    for (const s of pkg.structs) {
      const type = names.type(s.name);
      for (const id of [type, names.encode(type), names.decode(type)])
        claim(id, `struct "${s.name}"`, spanOf(s));
    }
    for (const e of pkg.enums) {
      for (const id of [names.type(e.name), names.enumValues(e.name)])
        claim(id, `enum "${e.name}"`, spanOf(e));
    }
    for (const p of pkg.protocols) {
      const owner = `protocol "${p.name}"`;
      for (const id of [
        names.client(p.name),
        names.server(p.name),
        names.handlers(p.name),
        names.serve(p.name),
        names.toServer(p.name),
        names.toClient(p.name),
        names.requestTable(p.name),
        names.eventTable(p.name),
      ]) {
        claim(id, owner, spanOf(p));
      }
      const members = new Map<string, string>(memberNames.map((n) => [n, 'the generated class']));
      for (const m of p.messages) {
        const messageOwner = `message "${m.name}"`;
        const type = names.type(m.name);
        const ids = [type, names.encode(type), names.decode(type), names.descriptor(m.name)];
        if (m.kind === 'call')
          ids.push(
            names.reply(m.name),
            names.encode(names.reply(m.name)),
            names.decode(names.reply(m.name)),
          );
        for (const id of ids) claim(id, messageOwner, spanOf(m));
        const methods =
          m.kind === 'call'
            ? [names.method(m.name)]
            : [names.method(m.name), names.waitMethod(m.name)];
        for (const method of methods) {
          const first = members.get(method);
          if (first !== undefined)
            this.#report(
              m.span,
              'IDL_DUPLICATE_NAME',
              `${messageOwner} would generate method "${method}", which ${first} already has; rename it`,
            );
          else members.set(method, messageOwner);
        }
      }
    }
  }
}

function structOf(type: TypeSpec): StructDef | undefined {
  if (type.kind === 'struct') return type.struct;
  if (type.kind === 'array') return structOf(type.items);
  return undefined;
}

/** Resolves parsed files into packages, adding every problem found to `diagnostics`. */
export function resolveFiles(
  files: readonly LoadedFile[],
  diagnostics: Diagnostic[],
): PackageDef[] {
  return new Resolver(diagnostics).resolve(files);
}
