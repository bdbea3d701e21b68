#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { compat, compatUsage } from './compat.js';
import { gen, genUsage } from './gen.js';
import { type Command, type CommandIo, UsageError } from './io.js';

/** Subcommands by name; each parses its own options. */
const commands: Record<string, { run: Command; usage: string }> = {
  gen: { run: gen, usage: genUsage },
  compat: { run: compat, usage: compatUsage },
};

const usage = `Usage: ftl-ipc <command> [options]

Commands:
${Object.entries(commands)
  .map(([name, c]) => `  ${name.padEnd(6)} ${c.usage.split('\n')[2]}`)
  .join('\n')}

Run \`ftl-ipc <command> --help\` for its options.
`;

/** Runs the CLI; returns the exit status: 0 done, 1 the input has problems, 2 bad usage. */
export async function main(argv: string[], io: CommandIo): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === '--help' || name === '-h') {
    io.out(usage);
    return name === undefined ? 2 : 0;
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
