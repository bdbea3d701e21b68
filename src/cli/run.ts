import { parseArgs } from 'node:util';
import { formatSpecDiagnostic } from '../runtime/diagnostics.js';
import { loadSystemSpec } from '../runtime/spec.js';
import { LiveStatus } from '../runtime/status.js';
import { type ShutdownReport, System, type SystemEvent } from '../runtime/supervisor.js';
import { type CommandIo, UsageError } from './io.js';

export const runUsage = `Usage: ftl-ipc run <system.yaml> [--grace <ms>] [--status | --no-status]

Runs a system of services: starts each as its spec asks, connects them, restarts them by their
policy, and on SIGINT or SIGTERM stops them all (a second signal terminates them at once).
  --grace <ms>   how long services get to finish at shutdown (default: the spec's, or 5000)
  --status       draw a live status table on stderr (default: when stderr is a terminal)
`;

interface RunContext {
  /** Whether stderr is a terminal, for the live status table; by default the process's. */
  readonly tty?: boolean;
  /** Where shutdown requests come from; the process's signals when run from the command line. */
  readonly signals?: NodeJS.EventEmitter;
}

/**
 * The `run` command. Exit status: 0 when every service ended cleanly (returned from `main`, or
 * stopped within the grace period), 1 when the spec has problems or a service failed or had to
 * be terminated, 2 for bad usage.
 */
export async function run(
  args: string[],
  io: CommandIo,
  context: RunContext = {},
): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    allowNegative: true,
    options: { grace: { type: 'string' }, status: { type: 'boolean' } },
  });
  const grace = values.grace === undefined ? undefined : Number(values.grace);
  if (positionals.length !== 1) throw new UsageError('run needs exactly one system spec file');
  if (grace !== undefined && !(Number.isInteger(grace) && grace >= 0)) {
    throw new UsageError(`--grace must be a whole number of milliseconds, got ${values.grace}`);
  }
  const file = positionals[0]!;
  let loaded: ReturnType<typeof loadSystemSpec>;
  try {
    loaded = loadSystemSpec(file);
  } catch (error) {
    io.err(`ftl-ipc run: cannot read ${file}: ${(error as Error).message}\n`);
    return 1;
  }
  const { spec, diagnostics } = loaded;
  if (spec === undefined) {
    for (const d of diagnostics) io.err(formatSpecDiagnostic(d));
    io.err(`${diagnostics.length} problem(s) in ${file}; nothing was started.\n`);
    return 1;
  }

  const live =
    (values.status ?? context.tty ?? process.stderr.isTTY) ? new LiveStatus(io.err) : undefined;
  const say = (line: string, write = io.err) => {
    if (live === undefined) write(line);
    else live.log(line, write);
  };
  const system = new System(spec, {
    onLog: (service, stream, line) =>
      say(`[${service}] ${line}\n`, stream === 'stdout' ? io.out : io.err),
    onEvent: (event) => say(`[run] ${describe(event)}\n`),
  });
  const signals = context.signals ?? process;
  let stopping: Promise<ShutdownReport> | undefined;
  const onSignal = (signal: string) => {
    if (stopping === undefined) {
      say(
        `[run] ${signal}: stopping (grace ${grace ?? spec.graceMs} ms; again to terminate now)\n`,
      );
      stopping = system.stop(grace);
    } else void system.stop(0);
  };
  signals.on('SIGINT', onSignal);
  signals.on('SIGTERM', onSignal);
  const redraw = live && setInterval(() => live.draw(system.status()), 250);

  system.start();
  await system.done;
  const report = await stopping;
  if (redraw !== undefined) clearInterval(redraw);
  live?.draw(system.status());
  signals.off('SIGINT', onSignal);
  signals.off('SIGTERM', onSignal);

  for (const s of report?.services ?? []) {
    say(`[run] ${s.name}: ${s.outcome}${s.code === null ? '' : ` (code ${s.code})`}\n`);
  }
  if (report !== undefined) say(`[run] stopped in ${Math.round(report.ms)} ms\n`);
  const failed =
    system.status().some((s) => s.state === 'failed') ||
    (report?.services.some((s) => s.outcome === 'terminated') ?? false);
  return failed ? 1 : 0;
}

function describe(event: SystemEvent): string {
  switch (event.kind) {
    case 'start':
      return `${event.service} started (${event.id})`;
    case 'exit': {
      const { code, signal } = event.exit;
      return `${event.service} exited (${signal ?? `code ${code}`})`;
    }
    case 'restart':
      return `${event.service} restarts in ${event.delayMs} ms (attempt ${event.attempt})`;
    case 'give-up':
      return `${event.service} failed after ${event.restarts} restart(s); not restarting`;
  }
}
