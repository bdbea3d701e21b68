import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument, type YAMLMap } from 'yaml';
import type { Diagnostic, DiagnosticCode, SourceFile } from './diagnostics.js';
import { namePattern } from './names.js';

/**
 * The first pass over one file: shapes, keys and scalar values are checked here; names are
 * resolved across files later (resolve.ts). Every node keeps its source range for later errors.
 */

export interface Located<T> {
  readonly value: T;
  readonly start: number;
  readonly end: number;
}

export interface RawType {
  readonly type: Located<string>;
  readonly capacity: Located<number> | undefined;
  readonly protocol: Located<string> | undefined;
  /** Checked against the pipe ends when resolving, where the type is known. */
  readonly end: Located<string> | undefined;
  readonly items: RawType | undefined;
}

export interface RawField {
  readonly name: Located<string>;
  readonly spec: RawType;
  readonly optional: boolean;
  readonly doc: string | undefined;
}

export interface RawStruct {
  readonly name: Located<string>;
  readonly fields: RawField[];
  readonly doc: string | undefined;
}

export interface RawEnum {
  readonly name: Located<string>;
  readonly members: { readonly name: Located<string>; readonly value: Located<number> }[];
  readonly doc: string | undefined;
}

export interface RawMessage {
  readonly name: Located<string>;
  readonly kind: 'call' | 'push';
  readonly origin: 'client' | 'server';
  readonly id: Located<number> | undefined;
  readonly replyId: Located<number> | undefined;
  readonly params: RawField[];
  readonly returns: RawField[] | undefined;
  readonly doc: string | undefined;
}

export interface RawProtocol {
  readonly name: Located<string>;
  readonly messages: RawMessage[];
  readonly doc: string | undefined;
}

export interface RawFile {
  readonly source: SourceFile;
  /** `''` when the file has no usable name (already reported): resolved anyway, under another. */
  readonly name: Located<string>;
  readonly doc: string | undefined;
  readonly imports: Located<string>[];
  readonly structs: RawStruct[];
  readonly enums: RawEnum[];
  readonly protocols: RawProtocol[];
}

const uint32Max = 0xffff_ffff;

type Entries = Map<string, { key: Node; value: Node | null }>;

class FileParser {
  readonly #source: SourceFile;
  readonly #diagnostics: Diagnostic[];

  constructor(source: SourceFile, diagnostics: Diagnostic[]) {
    this.#source = source;
    this.#diagnostics = diagnostics;
  }

  report(at: { start: number; end: number }, code: DiagnosticCode, message: string): void {
    this.#diagnostics.push(this.#source.diagnostic(code, message, at.start, at.end));
  }

  #span(node: Node | null, fallback: Node | null = null): { start: number; end: number } {
    const range = node?.range ?? fallback?.range;
    return range ? { start: range[0], end: range[1] } : { start: 0, end: 0 };
  }

  file(): RawFile | undefined {
    const lineCounter = new LineCounter();
    const doc = parseDocument(this.#source.text, {
      lineCounter,
      prettyErrors: false,
      uniqueKeys: true,
    });
    for (const error of doc.errors) {
      this.report(
        { start: error.pos[0], end: error.pos[1] },
        'IDL_SYNTAX',
        error.message.split('\n')[0]!,
      );
    }
    if (doc.errors.length > 0) return undefined;
    const root = doc.contents as Node | null;
    const entries = this.#entries(
      root,
      'the file',
      ['name', 'doc', 'imports', 'structs', 'enums', 'protocols'],
      ['name'],
    );
    if (!entries) return undefined;
    // Without a name the file is still parsed and resolved, so its other problems are reported too.
    const name = this.#name(entries, 'name', 'package name') ?? { value: '', start: 0, end: 0 };
    return {
      source: this.#source,
      doc: this.#optionalString(entries, 'doc'),
      imports: this.#list(entries.get('imports')?.value ?? null, 'imports', (node) =>
        this.#string(node, 'an import path'),
      ),
      structs: this.#definitions(
        entries.get('structs')?.value ?? null,
        'structs',
        'fields',
        (node, name, doc) => {
          const fields = this.#fields(node, `struct "${name.value}"`);
          return { name, fields, doc };
        },
      ),
      enums: this.#definitions(
        entries.get('enums')?.value ?? null,
        'enums',
        'values',
        (node, name, doc) => ({
          name,
          members: this.#enumMembers(node, name.value),
          doc,
        }),
      ),
      protocols: this.#definitions(
        entries.get('protocols')?.value ?? null,
        'protocols',
        'messages',
        (node, name, doc) => ({
          name,
          messages: this.#list(node, `protocol "${name.value}"`, (m) => this.#message(m)),
          doc,
        }),
      ),
      name,
    };
  }

  /**
   * Structs, enums and protocols share a form: a mapping from name to either the list itself or
   * `{ doc, <listKey> }` when the definition has documentation.
   */
  #definitions<T>(
    node: Node | null,
    what: string,
    listKey: string,
    build: (list: Node | null, name: Located<string>, doc: string | undefined) => T,
  ): T[] {
    if (node === null) return [];
    if (!isMap(node)) {
      this.report(
        this.#span(node),
        'IDL_BAD_VALUE',
        `"${what}" must be a mapping from name to definition`,
      );
      return [];
    }
    const out: T[] = [];
    for (const pair of (node as YAMLMap<Node, Node | null>).items) {
      const name = this.#nameAt(pair.key, `${what.replace(/s$/, '')} name`);
      if (!name) continue;
      const value = pair.value;
      if (isMap(value)) {
        const entries = this.#entries(
          value,
          `${what.replace(/s$/, '')} "${name.value}"`,
          ['doc', listKey],
          [listKey],
        );
        if (entries)
          out.push(
            build(entries.get(listKey)?.value ?? null, name, this.#optionalString(entries, 'doc')),
          );
      } else {
        out.push(build(value, name, undefined));
      }
    }
    return out;
  }

  #list<T>(node: Node | null, what: string, item: (node: Node) => T | undefined): T[] {
    if (node === null) return [];
    if (!isSeq(node)) {
      this.report(this.#span(node), 'IDL_BAD_VALUE', `${what} must be a list`);
      return [];
    }
    const out: T[] = [];
    for (const child of node.items as (Node | null)[]) {
      const value = child === null ? undefined : item(child);
      if (value !== undefined) out.push(value);
    }
    return out;
  }

  #message(node: Node): RawMessage | undefined {
    const keys = ['name', 'type', 'origin', 'id', 'reply_id', 'params', 'returns', 'doc'];
    const entries = this.#entries(node, 'a message', keys, ['name', 'type']);
    if (!entries) return undefined;
    const name = this.#name(entries, 'name', 'message name');
    const type = this.#choice(entries, 'type', ['call', 'push'] as const);
    if (!name) return undefined;
    // With its type wrong or missing (reported), the message is read on as what its keys suggest,
    // so the problems of its fields are reported in this pass too.
    const kind = type ?? (entries.has('origin') && !entries.has('returns') ? 'push' : 'call');
    const where = `message "${name.value}"`;
    let origin = this.#choice(entries, 'origin', ['client', 'server'] as const);
    const originEntry = entries.get('origin');
    if (type === 'call' && origin === 'server' && originEntry) {
      this.report(
        this.#span(originEntry.value),
        'IDL_BAD_VALUE',
        `${where}: a call always comes from the client; remove "origin" or make it a push`,
      );
    }
    if (kind === 'push' && !originEntry) {
      this.report(
        this.#span(entries.get('name')!.key),
        'IDL_MISSING_KEY',
        `${where}: a push needs "origin: client" or "origin: server"`,
      );
    }
    origin ??= 'client';
    const returns = entries.get('returns');
    if (type === 'push' && returns) {
      this.report(
        this.#span(returns.key),
        'IDL_BAD_VALUE',
        `${where}: only a call has "returns"; a push is one way`,
      );
    }
    const replyId = entries.get('reply_id');
    if (type === 'push' && replyId) {
      this.report(this.#span(replyId.key), 'IDL_BAD_VALUE', `${where}: only a call has "reply_id"`);
    }
    return {
      name,
      kind,
      origin: kind === 'call' ? 'client' : origin,
      id: this.#integer(entries.get('id'), 'id', 1, uint32Max),
      replyId: this.#integer(replyId, 'reply_id', 1, uint32Max),
      params: this.#fields(entries.get('params')?.value ?? null, `${where} params`),
      returns:
        kind === 'call' ? this.#fields(returns?.value ?? null, `${where} returns`) : undefined,
      doc: this.#optionalString(entries, 'doc'),
    };
  }

  #fields(node: Node | null, what: string): RawField[] {
    return this.#list(node, what, (child) => {
      const keys = ['name', 'type', 'capacity', 'protocol', 'end', 'items', 'optional', 'doc'];
      const entries = this.#entries(child, 'a field', keys, ['name', 'type']);
      if (!entries) return undefined;
      const name = this.#name(entries, 'name', 'field name');
      const spec = this.#typeSpec(entries);
      if (!name || !spec) return undefined;
      const optional = entries.get('optional');
      return {
        name,
        spec,
        optional: this.#bool(optional) ?? false,
        doc: this.#optionalString(entries, 'doc'),
      };
    });
  }

  #typeSpec(entries: Entries): RawType | undefined {
    const typeEntry = entries.get('type');
    const type = this.#string(typeEntry?.value ?? null, '"type"', typeEntry?.key);
    if (!type) return undefined;
    const itemsEntry = entries.get('items');
    let items: RawType | undefined;
    if (itemsEntry) {
      const itemEntries = this.#entries(
        itemsEntry.value,
        '"items"',
        ['type', 'capacity', 'protocol', 'end', 'items'],
        ['type'],
      );
      items = itemEntries ? this.#typeSpec(itemEntries) : undefined;
      if (!items) return undefined;
    }
    return {
      type,
      capacity: this.#integer(entries.get('capacity'), 'capacity', 1, uint32Max),
      protocol: this.#optionalLocated(entries, 'protocol'),
      end: this.#optionalLocated(entries, 'end'),
      items,
    };
  }

  #enumMembers(node: Node | null, enumName: string): RawEnum['members'] {
    let next = 0;
    const members = this.#list(node, `enum "${enumName}"`, (child) => {
      let name: Located<string> | undefined;
      let value: Located<number> | undefined;
      if (isScalar(child)) {
        name = this.#nameAt(child, 'enum value name');
      } else {
        const entries = this.#entries(child, 'an enum value', ['name', 'value', 'doc'], ['name']);
        if (!entries) return undefined;
        name = this.#name(entries, 'name', 'enum value name');
        value = this.#integer(entries.get('value'), 'value', 0, uint32Max);
      }
      if (!name) return undefined;
      value ??= { value: next, start: name.start, end: name.end };
      next = value.value + 1;
      return { name, value };
    });
    if (node !== null && members.length === 0 && isSeq(node)) {
      this.report(this.#span(node), 'IDL_BAD_VALUE', `enum "${enumName}" needs at least one value`);
    }
    return members;
  }

  #entries(
    node: Node | null,
    what: string,
    allowed: readonly string[],
    required: readonly string[],
  ): Entries | undefined {
    if (!isMap(node)) {
      this.report(
        this.#span(node),
        'IDL_BAD_VALUE',
        `${what} must be a mapping with keys ${allowed.join(', ')}`,
      );
      return undefined;
    }
    const entries: Entries = new Map();
    for (const pair of (node as YAMLMap<Node, Node | null>).items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : undefined;
      if (key === undefined || !allowed.includes(key)) {
        const shown = key === undefined ? 'a non-scalar key' : `unknown key "${key}"`;
        this.report(
          this.#span(pair.key),
          'IDL_UNKNOWN_KEY',
          `${shown} in ${what}; allowed keys: ${allowed.join(', ')}`,
        );
        continue;
      }
      entries.set(key, { key: pair.key, value: pair.value });
    }
    for (const key of required) {
      if (!entries.has(key))
        this.report(this.#span(node), 'IDL_MISSING_KEY', `${what} needs "${key}"`);
    }
    return entries;
  }

  #string(
    node: Node | null,
    what: string,
    fallback: Node | null = null,
  ): Located<string> | undefined {
    if (!isScalar(node) || typeof node.value !== 'string' || node.value === '') {
      const shown = isScalar(node) ? JSON.stringify(node.value) : 'a collection';
      this.report(
        this.#span(node, fallback),
        'IDL_BAD_VALUE',
        `${what} must be a non-empty string, not ${shown}`,
      );
      return undefined;
    }
    return { value: node.value, ...this.#span(node) };
  }

  #optionalLocated(entries: Entries, key: string): Located<string> | undefined {
    const entry = entries.get(key);
    return entry ? this.#string(entry.value, `"${key}"`, entry.key) : undefined;
  }

  #optionalString(entries: Entries, key: string): string | undefined {
    return this.#optionalLocated(entries, key)?.value;
  }

  /** A badly formed name is reported and still returned, so what it names is checked too. */
  #nameAt(node: Node | null, what: string): Located<string> | undefined {
    const name = this.#string(node, what);
    if (name && !namePattern.test(name.value)) {
      this.report(
        name,
        'IDL_BAD_NAME',
        `${what} "${name.value}" must be lower snake case (like tcp_listen)`,
      );
    }
    return name;
  }

  #name(entries: Entries, key: string, what: string): Located<string> | undefined {
    const entry = entries.get(key);
    return entry ? this.#nameAt(entry.value, what) : undefined;
  }

  #choice<T extends string>(entries: Entries, key: string, choices: readonly T[]): T | undefined {
    const entry = entries.get(key);
    if (!entry) return undefined;
    const value = isScalar(entry.value) ? entry.value.value : undefined;
    if (typeof value === 'string' && (choices as readonly string[]).includes(value))
      return value as T;
    this.report(
      this.#span(entry.value, entry.key),
      'IDL_BAD_VALUE',
      `"${key}" must be one of ${choices.join(', ')}, not ${JSON.stringify(value ?? null)}`,
    );
    return undefined;
  }

  #integer(
    entry: { key: Node; value: Node | null } | undefined,
    key: string,
    min: number,
    max: number,
  ): Located<number> | undefined {
    if (!entry) return undefined;
    const value = isScalar(entry.value) ? entry.value.value : undefined;
    if (typeof value === 'number' && Number.isInteger(value) && value >= min && value <= max) {
      return { value, ...this.#span(entry.value) };
    }
    this.report(
      this.#span(entry.value, entry.key),
      'IDL_BAD_VALUE',
      `"${key}" must be an integer from ${min} to ${max}, not ${JSON.stringify(value ?? null)}`,
    );
    return undefined;
  }

  #bool(entry: { key: Node; value: Node | null } | undefined): boolean | undefined {
    if (!entry) return undefined;
    const value = isScalar(entry.value) ? entry.value.value : undefined;
    if (typeof value === 'boolean') return value;
    this.report(
      this.#span(entry.value, entry.key),
      'IDL_BAD_VALUE',
      `"optional" must be true or false, not ${JSON.stringify(value ?? null)}`,
    );
    return undefined;
  }
}

/** Parses one IDL file (YAML, or JSON which YAML reads too), adding problems to `diagnostics`. */
export function parseFile(source: SourceFile, diagnostics: Diagnostic[]): RawFile | undefined {
  return new FileParser(source, diagnostics).file();
}
