#!/usr/bin/env node
import { readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { compat, compatSummary, compatUsage } from './compat.js';
import { gen, genSummary, genUsage } from './gen.js';
import { type Command, type CommandIo, UsageError } from './io.js';
import { run, runSummary, runUsage } from './run.js';

/** Subcommands by name; each parses its own options. */
const commands: Record<string, { run: Command; summary: string; usage: string }> = {
  gen: { run: gen, summary: genSummary, usage: genUsage },
  compat: { run: compat, summary: compatSummary, usage: compatUsage },
  run: { run, summary: runSummary, usage: runUsage },
};

const usage = `Usage: ftl-ipc <command> [options]
       ftl-ipc --version

Commands:
${Object.entries(commands)
  .map(([name, c]) => `  ${name.padEnd(8)}${c.summary}`)
  .join('\n')}

Options:
  -h, --help     show this help; \`ftl-ipc <command> --help\` shows a command's
  -v, --version  print the version of ftl-ipc
`;

/** The installed package's version; this file is dist/src/cli/main.js inside it. */
function version(): string {
  const pkg = new URL('../../../package.json', import.meta.url);
  return (JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }).version;
}

/** Runs the CLI; returns the exit status: 0 done, 1 the input has problems, 2 bad usage. */
export async function main(argv: string[], io: CommandIo): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === '--help' || name === '-h') {
    io.out(usage);
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-v') {
    io.out(`${version()}\n`);
    return 0;
  }
  const command = commands[name];
  if (command === undefined) {
    io.err(`ftl-ipc: unknown command "${name}"\n\n${usage}`);
    return 2;
  }
  if (args.includes('--help') || args.includes('-h')) {
    io.out(command.usage);
    return 0;
  }
  try {
    return await command.run(args, io);
  } catch (error) {
    // parseArgs reports unknown options as TypeErrors with a code; both are the caller's mistake.
    if (
      error instanceof UsageError ||
      (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')
    ) {
      io.err(`ftl-ipc ${name}: ${(error as Error).message}\n\n${command.usage}`);
      return 2;
    }
    throw error;
  }
}

const invoked =
  process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
if (invoked) {
  const io: CommandIo = {
    out: (t) => process.stdout.write(t),
    err: (t) => process.stderr.write(t),
  };
  process.exitCode = await main(process.argv.slice(2), io);
}
