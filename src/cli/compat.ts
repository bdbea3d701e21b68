import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { checkCompatibility } from '../idl/compat.js';
import { formatDiagnostic, SourceFile } from '../idl/diagnostics.js';
import { loadOrReport } from './gen.js';
import { type Command, UsageError } from './io.js';

export const compatSummary = 'Checks that a new IDL can still talk to peers built from an old one.';

export const compatUsage = `Usage: ftl-ipc compat --baseline <old file or folder>... <new file or folder>...

${compatSummary}
Every incompatible change is printed with its position; the rules are in docs/idl.md, Evolution.

Options:
  --baseline <path>   the IDL as released (repeatable), e.g. a checkout of the last tag
  -h, --help          show this help

Exit status: 0 compatible, 1 incompatible changes or IDL problems, 2 bad usage.
`;

export const compat: Command = async (args, io) => {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { baseline: { type: 'string', multiple: true } },
  });
  if (!values.baseline?.length) throw new UsageError('compat needs --baseline with the older IDL');
  const before = loadOrReport(values.baseline, io);
  const after = loadOrReport(positionals, io);
  if (before === undefined || after === undefined) return 1;
  const problems = checkCompatibility(before, after);
  const sources = new Map<string, SourceFile>();
  for (const { message, span } of problems) {
    let source = sources.get(span.file);
    if (source === undefined) {
      source = new SourceFile(span.file, readFileSync(span.file, 'utf8'));
      sources.set(span.file, source);
    }
    io.err(formatDiagnostic(source.diagnostic('IDL_INCOMPATIBLE', message, span.start, span.end)));
  }
  if (problems.length > 0) {
    io.err(`${problems.length} incompatible change(s).\n`);
    return 1;
  }
  io.out('compatible: older peers can still talk to this IDL\n');
  return 0;
};
