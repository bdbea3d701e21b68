/** The identifiers generated code uses, derived from IDL names in one place so checks and output agree. */

/** IDL names: lower snake case, no doubled or trailing underscores, so camel case maps back. */
export const namePattern = /^[a-z][a-z0-9]*(_[a-z0-9]+)*$/;

export function camelCase(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

export function pascalCase(name: string): string {
  const camel = camelCase(name);
  return camel.charAt(0).toUpperCase() + camel.slice(1);
}

export const names = {
  type: (name: string) => pascalCase(name),
  reply: (message: string) => `${pascalCase(message)}Reply`,
  encode: (typeName: string) => `encode${typeName}`,
  decode: (typeName: string) => `decode${typeName}`,
  descriptor: (message: string) => camelCase(message),
  enumValues: (enumName: string) => `${camelCase(enumName)}Values`,
  client: (protocol: string) => `${pascalCase(protocol)}Client`,
  server: (protocol: string) => `${pascalCase(protocol)}Server`,
  handlers: (protocol: string) => `${pascalCase(protocol)}Handlers`,
  serve: (protocol: string) => `serve${pascalCase(protocol)}`,
  /** The union of messages one side receives. */
  toServer: (protocol: string) => `${pascalCase(protocol)}Request`,
  toClient: (protocol: string) => `${pascalCase(protocol)}Event`,
  requestTable: (protocol: string) => `${camelCase(protocol)}Requests`,
  eventTable: (protocol: string) => `${camelCase(protocol)}Events`,
  field: (name: string) => camelCase(name),
  method: (message: string) => camelCase(message),
  waitMethod: (message: string) => `${camelCase(message)}Wait`,
} as const;

/** Identifiers generated modules import from the main entry (`ftl-ipc`): what callers write too. */
export const mainEntryNames: ReadonlySet<string> = new Set([
  'CallContext',
  'CallOptions',
  'Channel',
  'ClientOptions',
  'DataPipeConsumer',
  'DataPipeProducer',
  'SendOptions',
  'ServeOptions',
  'WaitOptions',
]);

/** Identifiers generated modules import from the `ftl-ipc/wire` entry, which only they need. */
export const wireEntryNames: ReadonlySet<string> = new Set([
  'CallDescriptor',
  'CallRouter',
  'MessageDescriptor',
  'MessageTable',
  'ProtocolClient',
  'Reader',
  'RpcClient',
  'RpcServer',
  'Writer',
]);

/** Identifiers generated modules import or use; IDL names must not produce them. */
export const runtimeNames: readonly string[] = [
  ...mainEntryNames,
  ...wireEntryNames,
  // Built-ins generated code names.
  'Promise',
  'Record',
  'Uint8Array',
  'Set',
  'ReadonlySet',
  'Object',
];

/**
 * Package names become namespace imports in generated code, so they must be neither reserved
 * words nor the short parameter names generated functions use.
 */
export const reservedPackageNames: readonly string[] = [
  ...['w', 'r', 'v', 'i', 'item', 'value', 'options', 'channel', 'target', 'handlers'],
  ...[
    'break',
    'case',
    'catch',
    'class',
    'const',
    'continue',
    'debugger',
    'default',
    'delete',
    'do',
    'else',
    'enum',
    'export',
    'extends',
    'false',
    'finally',
    'for',
    'function',
    'if',
    'import',
    'in',
    'instanceof',
    'new',
    'null',
    'return',
    'super',
    'switch',
    'this',
    'throw',
    'true',
    'try',
    'typeof',
    'var',
    'void',
    'while',
    'with',
    'yield',
    'let',
    'static',
    'implements',
    'interface',
    'package',
    'private',
    'protected',
    'public',
    'await',
    'arguments',
    'eval',
    'undefined',
  ],
];

/** Members of generated client and server classes; message methods must not shadow them. */
export const memberNames: readonly string[] = [
  ...['channel', 'recv', 'close', 'constructor', 'call', 'send', 'sendWait', 'reply', 'replyError'],
  ...['router'],
  ...['serve', 'dispatch', 'table'],
];
