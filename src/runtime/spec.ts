import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { isMap, isScalar, isSeq, type Node, parseDocument, type YAMLMap } from 'yaml';
import { SourceFile, type SpecDiagnostic, type SpecDiagnosticCode } from './diagnostics.js';

/** What a service does when its `main` fails or its thread or process dies. */
export type RestartPolicy =
  | { readonly policy: 'never' }
  | {
      readonly policy: 'on-failure';
      /** Restarts allowed in a row before the service is given up; a clean run resets it. */
      readonly limit: number;
      /** Wait before the first restart; doubled each time, capped at `maxBackoffMs`. */
      readonly backoffMs: number;
      readonly maxBackoffMs: number;
    };

export interface DependencySpec {
  /** What the client calls it: `env.channel(name)`. */
  readonly name: string;
  readonly protocol: string;
  /**
   * The service that provides `protocol`, resolved when the spec is checked; '' when no local
   * service does and the system has a NATS server (`remote`).
   */
  readonly service: string;
  /** Resolved over NATS, by another system (docs/nats.md). */
  readonly remote?: true;
  /** Messages each end's queue holds (`Channel.pair` `capacity`). */
  readonly capacity?: number;
  readonly capacityBytes?: number;
}

export type Isolation = 'thread' | 'process';

/** What runs a service's module: node, python3 with the ftl_ipc package (docs/python.md), or
 * the module itself, a built Rust binary (docs/rust.md). */
export type Language = 'node' | 'python' | 'rust';

export interface ServiceSpec {
  readonly name: string;
  /** Absolute path of the module to run (a `.ts` path is mapped to its compiled `.js`). */
  readonly module: string;
  readonly language: Language;
  readonly isolation: Isolation;
  readonly provides: readonly string[];
  readonly depends: readonly DependencySpec[];
  readonly restart: RestartPolicy;
  /** Copies of it the supervisor runs; its clients' calls are spread over them. Default 1. */
  readonly instances: number;
  /** Handed to the service as `env.config`; plain JSON data. */
  readonly config: unknown;
}

export interface SystemSpec {
  readonly file: string;
  readonly name: string;
  /** How long services get to finish after shutdown is asked before they are terminated. */
  readonly graceMs: number;
  readonly services: readonly ServiceSpec[];
  /** NATS servers that join this system to others: FTL_NATS_URL (comma-separated), else `nats`. */
  readonly nats?: readonly string[];
}

export const DEFAULT_GRACE_MS = 5000;
export const DEFAULT_RESTART = { limit: 5, backoffMs: 100, maxBackoffMs: 5000 } as const;

const NAME = /^[a-z][a-z0-9_-]*$/;

/**
 * Checks a system spec (YAML, or JSON which is YAML too) and reports every problem it finds, each
 * with its position, rather than stopping at the first. `file` is used for messages and to
 * resolve module paths.
 */
export function parseSystemSpec(
  text: string,
  file: string,
): { spec?: SystemSpec; diagnostics: SpecDiagnostic[] } {
  const source = new SourceFile(file, text);
  const diagnostics: SpecDiagnostic[] = [];
  const report = (code: SpecDiagnosticCode, message: string, node: Node | null | undefined) => {
    const range = node?.range ?? [0, 0];
    diagnostics.push(source.diagnostic(code, message, range[0], range[1]));
  };
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false });
  for (const error of doc.errors) {
    diagnostics.push(
      source.diagnostic('SPEC_SYNTAX', error.message.split('\n')[0]!, error.pos[0], error.pos[1]),
    );
  }
  if (diagnostics.length > 0) return { diagnostics };

  const fields = new Fields(report);
  const root = fields.map(doc.contents, 'the system spec', [
    'name',
    'shutdown',
    'services',
    'nats',
  ]);
  if (root === undefined) return { diagnostics };
  const name = fields.name(root, 'name', false) ?? 'system';
  const shutdown = fields.map(root.get('shutdown', true), 'shutdown', ['graceMs']);
  const graceMs = (shutdown && fields.int(shutdown, 'graceMs', 0)) ?? DEFAULT_GRACE_MS;

  const nats = readNats(root, report);

  const servicesNode = root.get('services', true);
  if (servicesNode === undefined) report('SPEC_MISSING_KEY', 'missing key "services"', root);
  else if (!isSeq(servicesNode) || servicesNode.items.length === 0) {
    report('SPEC_BAD_VALUE', '"services" must be a non-empty list of services', servicesNode);
  }
  const serviceNodes = isSeq(servicesNode) ? servicesNode.items : [];
  const drafts: Draft[] = [];
  const seen = new Set<string>();
  for (const node of serviceNodes) {
    const service = fields.map(node as Node, 'a service', SERVICE_KEYS);
    if (service === undefined) continue;
    const draft = readService(service, fields, dirname(resolve(file)));
    if (draft === undefined) continue;
    if (seen.has(draft.name)) {
      report('SPEC_DUPLICATE_NAME', `service "${draft.name}" is defined twice`, draft.nameNode);
    }
    seen.add(draft.name);
    drafts.push(draft);
  }
  const services = drafts.map((d) => resolveDependencies(d, drafts, report, nats !== undefined));
  // Checks run by kind; a reader wants the problems in file order.
  diagnostics.sort((a, b) => a.line - b.line || a.col - b.col);
  if (diagnostics.length > 0) return { diagnostics };
  return {
    spec: { file, name, graceMs, services, ...(nats !== undefined && { nats }) },
    diagnostics,
  };
}

/** `nats: url` or `nats: [urls]`; FTL_NATS_URL, when set, names the servers instead. */
function readNats(root: YAMLMap, report: Report): string[] | undefined {
  const env = process.env.FTL_NATS_URL;
  if (env !== undefined && env.trim() !== '') return env.split(',').map((u) => u.trim());
  const node = root.get('nats', true) as Node | undefined;
  if (node === undefined) return undefined;
  const items = isSeq(node) ? node.items : [node];
  const urls = items.map((item) => (isScalar(item) ? item.value : undefined));
  if (urls.length === 0 || !urls.every((u) => typeof u === 'string' && u !== '')) {
    report('SPEC_BAD_VALUE', '"nats" must be a server URL or a non-empty list of them', node);
    return undefined;
  }
  return urls as string[];
}

/** Reads and checks a spec file; `diagnostics` is empty exactly when `spec` is set. */
export function loadSystemSpec(file: string): { spec?: SystemSpec; diagnostics: SpecDiagnostic[] } {
  return parseSystemSpec(readFileSync(file, 'utf8'), file);
}

const SERVICE_KEYS = [
  'name',
  'module',
  'python',
  'rust',
  'isolation',
  'provides',
  'depends',
  'restart',
  'instances',
  'config',
] as const;

type Report = (code: SpecDiagnosticCode, message: string, node: Node | null | undefined) => void;

interface DraftDependency {
  readonly name: string;
  readonly protocol: string;
  readonly service: string | undefined;
  readonly capacity: number | undefined;
  readonly capacityBytes: number | undefined;
  readonly node: Node;
}

interface Draft extends Omit<ServiceSpec, 'depends'> {
  readonly nameNode: Node;
  readonly depends: readonly DraftDependency[];
}

/** Typed reads of map entries; each problem is reported where it is and yields `undefined`. */
class Fields {
  readonly report: Report;

  constructor(report: Report) {
    this.report = report;
  }

  map(node: Node | null | undefined, what: string, keys: readonly string[]): YAMLMap | undefined {
    if (node === undefined) return undefined;
    if (!isMap(node)) {
      this.report('SPEC_BAD_VALUE', `${what} must be a map`, node);
      return undefined;
    }
    for (const pair of node.items) {
      const key = isScalar(pair.key) ? String(pair.key.value) : '';
      if (!keys.includes(key)) {
        this.report(
          'SPEC_UNKNOWN_KEY',
          `unknown key "${key}" in ${what}; expected one of: ${keys.join(', ')}`,
          pair.key as Node,
        );
      }
    }
    return node;
  }

  scalar(map: YAMLMap, key: string, required: boolean): { value: unknown; node: Node } | undefined {
    const node = map.get(key, true) as Node | undefined;
    if (node === undefined) {
      if (required) this.report('SPEC_MISSING_KEY', `missing key "${key}"`, map);
      return undefined;
    }
    if (!isScalar(node)) {
      this.report('SPEC_BAD_VALUE', `"${key}" must be a single value`, node);
      return undefined;
    }
    return { value: node.value, node };
  }

  string(map: YAMLMap, key: string, required: boolean): string | undefined {
    const found = this.scalar(map, key, required);
    if (found === undefined) return undefined;
    if (typeof found.value !== 'string' || found.value === '') {
      this.report('SPEC_BAD_VALUE', `"${key}" must be a non-empty string`, found.node);
      return undefined;
    }
    return found.value;
  }

  name(map: YAMLMap, key: string, required: boolean): string | undefined {
    const value = this.string(map, key, required);
    if (value === undefined || NAME.test(value)) return value;
    this.report(
      'SPEC_BAD_VALUE',
      `"${key}" must be lower case letters, digits, "-" and "_", starting with a letter; got "${value}"`,
      map.get(key, true) as Node,
    );
    return undefined;
  }

  oneOf<T extends string>(map: YAMLMap, key: string, choices: readonly T[]): T | undefined {
    const found = this.scalar(map, key, false);
    if (found === undefined) return undefined;
    if (choices.includes(found.value as T)) return found.value as T;
    this.report(
      'SPEC_BAD_VALUE',
      `"${key}" must be one of ${choices.map((c) => `"${c}"`).join(', ')}; got ${JSON.stringify(found.value)}`,
      found.node,
    );
    return undefined;
  }

  int(map: YAMLMap, key: string, min: number): number | undefined {
    const found = this.scalar(map, key, false);
    if (found === undefined) return undefined;
    const v = found.value;
    if (typeof v === 'number' && Number.isSafeInteger(v) && v >= min) return v;
    this.report(
      'SPEC_BAD_VALUE',
      `"${key}" must be an integer of at least ${min}; got ${JSON.stringify(v)}`,
      found.node,
    );
    return undefined;
  }

  list(map: YAMLMap, key: string): Node[] {
    const node = map.get(key, true) as Node | undefined;
    if (node === undefined) return [];
    if (!isSeq(node)) {
      this.report('SPEC_BAD_VALUE', `"${key}" must be a list`, node);
      return [];
    }
    return node.items as Node[];
  }
}

function readService(map: YAMLMap, fields: Fields, dir: string): Draft | undefined {
  const name = fields.name(map, 'name', true);
  const language: Language = map.has('python') ? 'python' : map.has('rust') ? 'rust' : 'node';
  const key = language === 'node' ? 'module' : language;
  if (['module', 'python', 'rust'].filter((k) => map.has(k)).length > 1)
    fields.report('SPEC_BAD_VALUE', 'a service has one of "module", "python" or "rust"', map);
  const moduleNode = map.get(key, true) as Node | undefined;
  const module = fields.string(map, key, true);
  const isolationNode = map.get('isolation', true) as Node | undefined;
  const isolation =
    fields.oneOf(map, 'isolation', ['thread', 'process'] as const) ??
    (language === 'node' ? 'thread' : 'process');
  if (language !== 'node' && isolation === 'thread')
    fields.report(
      'SPEC_BAD_VALUE',
      `a "${language}" service runs as a process, not a thread`,
      isolationNode,
    );
  const provides: string[] = [];
  for (const node of fields.list(map, 'provides')) {
    if (isScalar(node) && typeof node.value === 'string' && NAME.test(node.value)) {
      provides.push(node.value);
    } else fields.report('SPEC_BAD_VALUE', 'a protocol name must be a lower case name', node);
  }
  const depends: DraftDependency[] = [];
  for (const node of fields.list(map, 'depends')) {
    const dep = fields.map(node, 'a dependency', [
      'name',
      'protocol',
      'service',
      'capacity',
      'capacityBytes',
    ]);
    if (dep === undefined) continue;
    const depName = fields.name(dep, 'name', true);
    const protocol = fields.name(dep, 'protocol', true);
    const service = fields.name(dep, 'service', false);
    const capacity = fields.int(dep, 'capacity', 1);
    const capacityBytes = fields.int(dep, 'capacityBytes', 1);
    if (depName === undefined || protocol === undefined) continue;
    depends.push({ name: depName, protocol, service, capacity, capacityBytes, node: dep });
  }
  const restart = readRestart(map, fields);
  const instances = fields.int(map, 'instances', 1);
  const configNode = map.get('config', true) as Node | undefined;
  if (name === undefined || module === undefined) return undefined;
  const { found: path, tried } =
    language === 'node' ? resolveModule(resolve(dir, module)) : existing(resolve(dir, module));
  if (path === undefined) {
    const build =
      language === 'rust'
        ? '; a rust service is a built binary: build it first (cargo build --release)'
        : /\.(c|m)?ts$/.test(module)
          ? '; a .ts module runs from its compiled .js: build it'
          : '';
    fields.report(
      'SPEC_MODULE_NOT_FOUND',
      `${key} "${module}" not found (relative to the spec's folder); looked for ${tried.map(shown).join(', ')}${build}`,
      moduleNode,
    );
  }
  return {
    name,
    nameNode: map.get('name', true) as Node,
    module: path ?? module,
    language,
    isolation,
    provides,
    depends,
    restart: restart ?? { policy: 'never' },
    instances: instances ?? 1,
    config: configNode?.toJSON() ?? {},
  };
}

function readRestart(map: YAMLMap, fields: Fields): RestartPolicy | undefined {
  const node = map.get('restart', true) as Node | undefined;
  if (node === undefined) return undefined;
  if (isScalar(node)) {
    const policy = fields.oneOf(map, 'restart', ['never', 'on-failure'] as const);
    if (policy === 'on-failure') return { policy, ...DEFAULT_RESTART };
    return policy === 'never' ? { policy } : undefined;
  }
  const restart = fields.map(node, '"restart"', ['policy', 'limit', 'backoffMs', 'maxBackoffMs']);
  if (restart === undefined) return undefined;
  const policy = fields.oneOf(restart, 'policy', ['never', 'on-failure'] as const);
  if (policy === undefined) {
    if (!restart.has('policy')) fields.report('SPEC_MISSING_KEY', 'missing key "policy"', restart);
    return undefined;
  }
  if (policy === 'never') return { policy };
  return {
    policy,
    limit: fields.int(restart, 'limit', 0) ?? DEFAULT_RESTART.limit,
    backoffMs: fields.int(restart, 'backoffMs', 0) ?? DEFAULT_RESTART.backoffMs,
    maxBackoffMs: fields.int(restart, 'maxBackoffMs', 0) ?? DEFAULT_RESTART.maxBackoffMs,
  };
}

function existing(path: string): { found?: string; tried: string[] } {
  return existsSync(path) ? { found: path, tried: [] } : { tried: [path] };
}

/**
 * Node 20 does not run TypeScript, so a `.ts` module (as written in a spec beside its sources)
 * runs from its compiled twin: beside it, where the nearest tsconfig.json's `rootDir`/`outDir`
 * put it, or under the package's `dist/` as tsc lays it out by default. Returns what exists, or
 * every path that was looked at.
 */
function resolveModule(path: string): { found?: string; tried: string[] } {
  if (!/\.(c|m)?ts$/.test(path)) return existing(path);
  const js = path.replace(/\.(c|m)?ts$/, '.$1js');
  const candidates = [js, ...compiledByTsconfig(js)];
  for (let dir = dirname(path); dir !== dirname(dir); dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) {
      candidates.push(join(dir, 'dist', relative(dir, js)));
      break;
    }
  }
  const tried = [...new Set(candidates)];
  const found = tried.find((c) => existsSync(c));
  return found === undefined ? { tried } : { found, tried };
}

/** Where the nearest tsconfig.json above `js` (a source path, renamed) compiles it to. */
function compiledByTsconfig(js: string): string[] {
  for (let dir = dirname(js); dir !== dirname(dir); dir = dirname(dir)) {
    const file = join(dir, 'tsconfig.json');
    if (!existsSync(file)) continue;
    const { rootDir, outDir } = compilerDirs(file, 0);
    if (outDir === undefined) return [];
    // Without rootDir, tsc uses the common folder of the sources: the config's or one below it.
    const top = relative(dir, js).split(sep)[0]!;
    const roots = rootDir === undefined ? [dir, join(dir, top)] : [rootDir];
    return roots
      .filter((root) => !relative(root, js).startsWith('..'))
      .map((root) => join(outDir, relative(root, js)));
  }
  return [];
}

/** `rootDir` and `outDir` of a tsconfig, absolute, following `extends` to local files. */
function compilerDirs(file: string, depth: number): { rootDir?: string; outDir?: string } {
  let config: { extends?: unknown; compilerOptions?: { rootDir?: unknown; outDir?: unknown } };
  try {
    config = JSON.parse(withoutComments(readFileSync(file, 'utf8')));
  } catch {
    return {};
  }
  const base =
    typeof config.extends === 'string' && config.extends.startsWith('.') && depth < 8
      ? compilerDirs(resolve(dirname(file), config.extends), depth + 1)
      : {};
  const dir = (value: unknown) =>
    typeof value === 'string' ? resolve(dirname(file), value) : undefined;
  const rootDir = dir(config.compilerOptions?.rootDir) ?? base.rootDir;
  const outDir = dir(config.compilerOptions?.outDir) ?? base.outDir;
  return {
    ...(rootDir !== undefined && { rootDir }),
    ...(outDir !== undefined && { outDir }),
  };
}

/** tsconfig.json is JSON with comments and trailing commas. */
function withoutComments(text: string): string {
  return text
    .replace(/("(?:[^"\\]|\\.)*")|\/\/[^\n]*|\/\*[\s\S]*?\*\//g, (_match, string) => string ?? '')
    .replace(/("(?:[^"\\]|\\.)*")|,(\s*[}\]])/g, (_match, string, close) => string ?? close);
}

/** A path as people read it: from the current directory when it is below it. */
function shown(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel.startsWith('..') || isAbsolute(rel) ? path : rel;
}

function resolveDependencies(
  draft: Draft,
  all: readonly Draft[],
  report: Report,
  nats: boolean,
): ServiceSpec {
  const names = new Set<string>();
  const depends: DependencySpec[] = [];
  for (const dep of draft.depends) {
    if (names.has(dep.name)) {
      report('SPEC_DUPLICATE_NAME', `dependency "${dep.name}" is listed twice`, dep.node);
    }
    names.add(dep.name);
    const providers = all.filter(
      (s) =>
        s.provides.includes(dep.protocol) && (dep.service === undefined || s.name === dep.service),
    );
    const provider = providers[0];
    const limits = {
      ...(dep.capacity !== undefined && { capacity: dep.capacity }),
      ...(dep.capacityBytes !== undefined && { capacityBytes: dep.capacityBytes }),
    };
    if (provider === undefined && nats && dep.service === undefined) {
      depends.push({
        name: dep.name,
        protocol: dep.protocol,
        service: '',
        remote: true,
        ...limits,
      });
      continue;
    }
    if (provider === undefined) {
      const by = dep.service === undefined ? 'no service' : `service "${dep.service}" does not`;
      report('SPEC_UNKNOWN_PROTOCOL', `${by} provides protocol "${dep.protocol}"`, dep.node);
      continue;
    }
    if (providers.length > 1) {
      report(
        'SPEC_AMBIGUOUS_PROVIDER',
        `protocol "${dep.protocol}" is provided by ${providers.map((p) => `"${p.name}"`).join(' and ')}; name one with "service"`,
        dep.node,
      );
      continue;
    }
    if (provider.name === draft.name) {
      report('SPEC_BAD_VALUE', `service "${draft.name}" depends on itself`, dep.node);
      continue;
    }
    depends.push({ name: dep.name, protocol: dep.protocol, service: provider.name, ...limits });
  }
  const { nameNode: _, ...service } = draft;
  return { ...service, depends };
}
