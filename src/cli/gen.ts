import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { type GeneratedFile, generate } from '../codegen/generate.js';
import { generatePython } from '../codegen/python.js';
import { generateRust } from '../codegen/rust.js';
import { formatDiagnostic } from '../idl/diagnostics.js';
import { findIdlFiles, loadIdl } from '../idl/load.js';
import type { PackageDef } from '../idl/model.js';
import { type Command, type CommandIo, UsageError, unreadable } from './io.js';

export const genSummary =
  'Generates TypeScript, Python or Rust clients and servers from IDL files.';

export const genUsage = `Usage: ftl-ipc gen <file or folder>... [--out <dir>] [--check] [--runtime <module>]
       [--lang typescript|python|rust]

${genSummary}
Reads .yaml, .yml and .json files (folders are searched) and writes a <name>.generated.ts for
each (with --lang python a <name>.py, see docs/python.md; with --lang rust a <name>.rs, see
docs/rust.md); docs/idl.md is the reference.

Options:
  --out <dir>         write every module here (default: beside each IDL file)
  --check             write nothing; exit 1 if a generated file differs from what is on disk
  --runtime <module>  where generated code imports the runtime from (default: ftl-ipc)
  --lang <language>   typescript (default), python or rust
  -h, --help          show this help

Exit status: 0 done, 1 the IDL has problems (each is printed) or --check found a stale file,
2 bad usage.
`;

/** Loads the IDL at `inputs`; on problems prints them all and returns undefined. */
export function loadOrReport(inputs: readonly string[], io: CommandIo): PackageDef[] | undefined {
  if (inputs.length === 0) throw new UsageError('give at least one IDL file or folder');
  let files: string[];
  try {
    files = findIdlFiles(inputs);
  } catch (error) {
    const path = (error as NodeJS.ErrnoException).path ?? inputs.join(', ');
    throw new UsageError(unreadable(path, error), false);
  }
  if (files.length === 0)
    throw new UsageError(`no .yaml, .yml or .json files in ${inputs.join(', ')}`);
  const { packages, diagnostics } = loadIdl(files);
  if (diagnostics.length === 0) return packages;
  for (const d of diagnostics) io.err(formatDiagnostic(d));
  io.err(`${diagnostics.length} problem(s) found in ${inputs.join(', ')}.\n`);
  return undefined;
}

function readOrUndefined(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

export const gen: Command = async (args, io) => {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      out: { type: 'string' },
      check: { type: 'boolean' },
      runtime: { type: 'string' },
      lang: { type: 'string', default: 'typescript' },
    },
  });
  const lang = values.lang;
  if (lang !== 'typescript' && lang !== 'python' && lang !== 'rust')
    throw new UsageError(`--lang must be typescript, python or rust, got ${JSON.stringify(lang)}`);
  if (lang !== 'typescript' && values.runtime !== undefined)
    throw new UsageError(
      `--runtime is for TypeScript: ${lang === 'python' ? 'Python modules import ftl_ipc' : 'Rust modules use the ftl_ipc crate'}`,
    );
  const packages = loadOrReport(positionals, io);
  if (packages === undefined) return 1;
  const outDir = values.out !== undefined ? { outDir: values.out } : {};
  const outputs: GeneratedFile[] =
    lang === 'python'
      ? generatePython(packages, outDir)
      : lang === 'rust'
        ? generateRust(packages, outDir)
        : generate(packages, {
            ...outDir,
            ...(values.runtime !== undefined && { runtime: values.runtime }),
          });
  if (values.check) {
    const stale = outputs.filter((o) => readOrUndefined(o.path) !== o.text);
    for (const o of stale) io.err(`${o.path} is out of date: run \`ftl-ipc gen\` again\n`);
    if (stale.length === 0) io.out(`${outputs.length} generated file(s) are up to date\n`);
    return stale.length === 0 ? 0 : 1;
  }
  for (const o of outputs) {
    mkdirSync(dirname(o.path), { recursive: true });
    if (readOrUndefined(o.path) !== o.text) writeFileSync(o.path, o.text);
    io.out(`wrote ${o.path}\n`);
  }
  return 0;
};
