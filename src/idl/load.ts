import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, join, relative, resolve } from 'node:path';
import { type Diagnostic, IdlError, SourceFile } from './diagnostics.js';
import type { PackageDef } from './model.js';
import { type Located, parseFile, type RawFile } from './parse.js';
import { type LoadedFile, resolveFiles } from './resolve.js';

const idlExtensions = new Set(['.yaml', '.yml', '.json']);

export interface LoadResult {
  /** Every package read, the inputs and what they import, in a stable order. */
  readonly packages: PackageDef[];
  readonly diagnostics: Diagnostic[];
}

/** Reads files from disk; tests pass a map instead. */
export type ReadFile = (path: string) => string;

/** Expands folders to the IDL files below them, sorted so output does not depend on the file system. */
export function findIdlFiles(inputs: readonly string[]): string[] {
  const out: string[] = [];
  const walk = (path: string): void => {
    if (statSync(path).isDirectory()) {
      for (const entry of readdirSync(path).sort()) {
        const child = join(path, entry);
        if (statSync(child).isDirectory() || idlExtensions.has(extname(entry))) walk(child);
      }
    } else {
      out.push(path);
    }
  };
  for (const input of inputs) walk(input);
  return [...new Set(out)];
}

/**
 * Loads IDL files and everything they import, then checks them together. Problems are collected,
 * not thrown, so a caller can show all of them at once.
 */
export function loadIdl(
  paths: readonly string[],
  readFile: ReadFile = (p) => readFileSync(p, 'utf8'),
): LoadResult {
  const diagnostics: Diagnostic[] = [];
  const byPath = new Map<string, RawFile | undefined>();
  const imports = new Map<RawFile, RawFile[]>();
  const display = (abs: string) => relative(process.cwd(), abs) || abs;

  /** `from` is the import that named this file: a read failure is reported there, where it can be fixed. */
  const load = (
    abs: string,
    chain: readonly string[],
    from?: { raw: RawFile; spec: Located<string> },
  ): RawFile | undefined => {
    if (byPath.has(abs)) return byPath.get(abs);
    byPath.set(abs, undefined);
    let text: string;
    try {
      text = readFile(abs);
    } catch (error) {
      const message = `cannot read ${display(abs)}: ${(error as Error).message}`;
      diagnostics.push(
        from
          ? from.raw.source.diagnostic('IDL_IMPORT', message, from.spec.start, from.spec.end)
          : { code: 'IDL_IMPORT', message, file: display(abs), line: 1, col: 1, frame: '' },
      );
      return undefined;
    }
    const raw = parseFile(new SourceFile(display(abs), text), diagnostics);
    byPath.set(abs, raw);
    if (!raw) return undefined;
    const deps: RawFile[] = [];
    for (const spec of raw.imports) {
      const target = resolve(dirname(abs), spec.value);
      if (target === abs || chain.includes(target)) {
        const cycle = [...chain, abs, target].map(display).join(' -> ');
        diagnostics.push(
          raw.source.diagnostic('IDL_IMPORT', `import cycle: ${cycle}`, spec.start, spec.end),
        );
        continue;
      }
      const dep = load(target, [...chain, abs], { raw, spec });
      if (dep) deps.push(dep);
    }
    imports.set(raw, deps);
    return raw;
  };

  for (const path of paths) load(resolve(path), []);
  const files: LoadedFile[] = [...byPath.values()]
    .filter((raw): raw is RawFile => raw !== undefined)
    .map((raw) => ({ raw, imports: imports.get(raw) ?? [] }));
  const packages = resolveFiles(files, diagnostics);
  return { packages, diagnostics };
}

/** Like {@link loadIdl}, but throws an {@link IdlError} listing every problem. */
export function loadIdlOrThrow(paths: readonly string[], readFile?: ReadFile): PackageDef[] {
  const { packages, diagnostics } = loadIdl(paths, readFile);
  if (diagnostics.length > 0) throw new IdlError(diagnostics);
  return packages;
}
