import type { MessageDef, PackageDef } from './model.js';

/**
 * Type ids: 32-bit FNV-1a over the UTF-8 bytes of `package.protocol.message`, and of
 * `package.protocol.message#reply` for a call's reply. The hash only depends on the qualified
 * name, so reordering messages, adding messages or adding files never changes an id.
 */
export function fnv1a32(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text)) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

export function messageIdName(pkg: string, protocol: string, message: string): string {
  return `${pkg}.${protocol}.${message}`;
}

export function replyIdName(pkg: string, protocol: string, message: string): string {
  return `${messageIdName(pkg, protocol, message)}#reply`;
}

/** Every message of the packages by its qualified name, `package.protocol.message`. */
export function messagesByName(packages: readonly PackageDef[]): Map<string, MessageDef> {
  const out = new Map<string, MessageDef>();
  for (const pkg of packages) {
    for (const protocol of pkg.protocols) {
      for (const m of protocol.messages) out.set(messageIdName(pkg.name, protocol.name, m.name), m);
    }
  }
  return out;
}
