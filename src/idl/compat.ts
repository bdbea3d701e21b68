import { messagesByName } from './ids.js';
import type { FieldDef, MessageDef, PackageDef, Span, StructDef, TypeSpec } from './model.js';

/** A change that would break a peer still running the older IDL. */
export interface CompatProblem {
  readonly message: string;
  /** Where in the newer IDL; for a removed message, where it was in the older one. */
  readonly span: Span;
}

function describe(type: TypeSpec): string {
  switch (type.kind) {
    case 'primitive':
      return type.name;
    case 'string':
    case 'bytes':
      return `${type.kind}(capacity ${type.capacity})`;
    case 'channel':
      return type.protocol ? `channel(${type.protocol.pkg}.${type.protocol.name})` : 'channel';
    case 'pipe':
      return `pipe(${type.end})`;
    case 'array':
      return `array(capacity ${type.capacity}) of ${describe(type.items)}`;
    case 'struct':
      return `struct ${type.struct.pkg}.${type.struct.name}`;
    case 'enum':
      return `enum ${type.enum.pkg}.${type.enum.name}`;
  }
}

/**
 * The rules of docs/idl.md "Evolution": a message keeps its id, kind and origin; its old fields
 * keep their names, types and order; new fields are appended and optional. Structs are embedded
 * inside messages, so they cannot grow at all. Enums may gain values but keep the old ones.
 */
class Comparer {
  readonly problems: CompatProblem[] = [];
  readonly #structsSeen = new Set<StructDef>();

  #report(span: Span, message: string): void {
    this.problems.push({ message, span });
  }

  type(before: TypeSpec, after: TypeSpec, where: string, span: Span): void {
    if (describe(before) !== describe(after)) {
      this.#report(span, `${where} changed from ${describe(before)} to ${describe(after)}`);
      return;
    }
    if (before.kind === 'array' && after.kind === 'array')
      this.type(before.items, after.items, `${where}[]`, span);
    if (before.kind === 'struct' && after.kind === 'struct')
      this.#struct(before.struct, after.struct);
    if (before.kind === 'enum' && after.kind === 'enum') {
      for (const old of before.enum.members) {
        const now = after.enum.members.find((m) => m.name === old.name);
        if (now?.value !== old.value) {
          this.#report(
            after.enum.span,
            `enum ${after.enum.name} value ${old.name} = ${old.value} was ${now ? `renumbered to ${now.value}` : 'removed'}`,
          );
        }
      }
    }
  }

  #struct(before: StructDef, after: StructDef): void {
    if (this.#structsSeen.has(after)) return;
    this.#structsSeen.add(after);
    if (before.fields.length !== after.fields.length) {
      this.#report(
        after.span,
        `struct ${after.name} went from ${before.fields.length} to ${after.fields.length} fields; structs sit inside messages and cannot change size`,
      );
    }
    this.fields(before.fields, after.fields, `struct ${after.name}`, false);
  }

  /** Old fields must stay as they were; appended ones must be optional (top level only). */
  fields(
    before: readonly FieldDef[],
    after: readonly FieldDef[],
    where: string,
    mayAppend: boolean,
  ): void {
    before.forEach((old, i) => {
      const now = after[i];
      if (now === undefined) {
        this.#report(old.span, `${where}: field ${old.name} was removed`);
        return;
      }
      if (now.name !== old.name)
        this.#report(
          now.span,
          `${where}: field ${i + 1} was ${old.name}, now ${now.name}; fields cannot be renamed, reordered or removed`,
        );
      if (now.optional !== old.optional)
        this.#report(
          now.span,
          `${where}: field ${now.name} became ${now.optional ? 'optional' : 'required'}`,
        );
      this.type(old.type, now.type, `${where}: field ${now.name}`, now.span);
    });
    for (const added of after.slice(before.length)) {
      if (!mayAppend || !added.optional) {
        this.#report(
          added.span,
          `${where}: new field ${added.name} must be optional and appended to a message, so older peers' messages stay valid`,
        );
      }
    }
  }

  message(before: MessageDef, after: MessageDef): void {
    const name = `${after.pkg}.${after.protocol}.${after.name}`;
    if (before.id !== after.id)
      this.#report(after.span, `${name}: type id changed from ${before.id} to ${after.id}`);
    if (before.replyId !== after.replyId)
      this.#report(
        after.span,
        `${name}: reply id changed from ${before.replyId} to ${after.replyId}`,
      );
    if (before.kind !== after.kind || before.origin !== after.origin) {
      this.#report(
        after.span,
        `${name}: changed from a ${before.kind} by the ${before.origin} to a ${after.kind} by the ${after.origin}`,
      );
    }
    this.fields(before.params, after.params, name, true);
    if (before.returns && after.returns)
      this.fields(before.returns, after.returns, `reply of ${name}`, true);
  }
}

/** Lists every change from `before` to `after` that an older peer would not survive. */
export function checkCompatibility(
  before: readonly PackageDef[],
  after: readonly PackageDef[],
): CompatProblem[] {
  const comparer = new Comparer();
  const now = messagesByName(after);
  for (const [name, old] of messagesByName(before)) {
    const current = now.get(name);
    if (current === undefined)
      comparer.problems.push({
        message: `${name} was removed or renamed; older peers still use it`,
        span: old.span,
      });
    else comparer.message(old, current);
  }
  return comparer.problems;
}
