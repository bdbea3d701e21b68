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
       ftl-ipc help [<command>]
       ftl-ipc --version

Commands:
${Object.entries(commands)
  .map(([name, c]) => `  ${name.padEnd(8)}${c.summary}`)
  .join('\n')}

Options:
  -h, --help     show this help; \`ftl-ipc help <command>\` or
                 \`ftl-ipc <command> --help\` shows a command's
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
  if (name === 'help') return help(args, io);
  const command = commands[name];
  if (command === undefined) return unknownCommand(name, io);
  if (args.includes('--help') || args.includes('-h')) {
    io.out(command.usage);
    return 0;
  }
  try {
    return await command.run(args, io);
  } catch (error) {
    const message = usageMistake(error);
    if (message === undefined) throw error;
    const showUsage = !(error instanceof UsageError) || error.showUsage;
    io.err(`ftl-ipc ${name}: ${message}\n${showUsage ? `\n${command.usage}` : ''}`);
    return 2;
  }
}

/** `ftl-ipc help` and `ftl-ipc help <command>`. */
function help(args: readonly string[], io: CommandIo): number {
  const [name, ...extra] = args;
  if (name === undefined) {
    io.out(usage);
    return 0;
  }
  const command = commands[name];
  if (command === undefined) return unknownCommand(name, io);
  if (extra.length > 0) {
    io.err(`ftl-ipc help: takes one command, got ${args.join(' ')}\n\n${usage}`);
    return 2;
  }
  io.out(command.usage);
  return 0;
}

function unknownCommand(name: string, io: CommandIo): number {
  io.err(`ftl-ipc: unknown command "${name}"\n\n${usage}`);
  return 2;
}

/**
 * The message for a mistake of the caller's, or undefined for any other error. parseArgs reports
 * bad options as TypeErrors with an ERR_PARSE_ARGS code; its message for an unknown option ends
 * in an unbalanced quote, so that one is said here.
 */
function usageMistake(error: unknown): string | undefined {
  if (error instanceof UsageError) return error.message;
  const { code, message } = error as { code?: string; message: string };
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    const option = /^Unknown option '(.*?)'/.exec(message)?.[1];
    if (option !== undefined) {
      return `unknown option ${option}; a file name that starts with '-' goes after '--', as in \`-- ${option}\``;
    }
  }
  return code?.startsWith('ERR_PARSE_ARGS') ? message : undefined;
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
