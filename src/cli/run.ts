import { parseArgs } from 'node:util';
import { ObserveServer } from '../observe/server.js';
import { formatSpecDiagnostic } from '../runtime/diagnostics.js';
import { loadSystemSpec } from '../runtime/spec.js';
import { LiveStatus } from '../runtime/status.js';
import { type ShutdownReport, System, type SystemEvent } from '../runtime/supervisor.js';
import { type CommandIo, UsageError, unreadable } from './io.js';

export const runSummary = 'Runs a system of services: starts, connects, restarts and stops them.';

export const runUsage = `Usage: ftl-ipc run <system.yaml> [--grace <ms>] [--status | --no-status]
                     [--ui [port]]

${runSummary}
Each service runs in a worker thread or a child process as its spec asks, gets a channel per
dependency, and is restarted by its policy; docs/runtime.md is the reference.

It ends by itself once every service without "provides" (a client or a job) has exited or
failed for good: the others are then stopped. A system whose services all provide something
runs until SIGINT or SIGTERM, which stop every service; a second signal terminates them at once.

Options:
  --grace <ms>   how long services get to finish at shutdown (default: the spec's, or 5000)
  --status       draw a live status table on stderr (default: when stderr is a terminal)
  --no-status    never draw it
  --ui [port]    serve a live page of the system and its Prometheus /metrics on 127.0.0.1
                 (default port: any free one); the URL, token included, is printed on stderr
  -h, --help     show this help

Exit status: 0 every service ended cleanly, 1 the spec has problems or a service failed or had
to be terminated, 2 bad usage.
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
  const { ui, rest } = takeUi(args);
  const { values, positionals } = parseArgs({
    args: rest,
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
    io.err(`ftl-ipc run: ${unreadable(file, error)}\n`);
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
  // The services that serve nobody: when they have all ended, so has the system's purpose.
  const clients = spec.services.filter((s) => s.provides.length === 0).map((s) => s.name);
  let stopping: Promise<ShutdownReport> | undefined;
  let finished = false;
  let terminated = false;
  const stop = (why: string, graceMs = grace ?? spec.graceMs) => {
    if (stopping !== undefined) return;
    say(`[run] ${why}: stopping (grace ${graceMs} ms; SIGINT or SIGTERM terminates at once)\n`);
    stopping = system.stop(graceMs);
  };
  const stopWhenClientsEnded = () => {
    const status = system.status();
    const ended = (name: string) =>
      status
        .filter((s) => s.service === name)
        .every((s) => s.state === 'exited' || s.state === 'failed');
    if (finished || clients.length === 0 || !clients.every(ended)) return;
    if (status.every((s) => s.state !== 'running' && s.state !== 'backoff')) return;
    stop(`every service without "provides" has ended (${clients.join(', ')})`);
  };
  let observer: ObserveServer | undefined;
  const system = new System(spec, {
    onLog: (service, stream, line) =>
      say(`[${service}] ${line}\n`, stream === 'stdout' ? io.out : io.err),
    onEvent: (event) => {
      observer?.event(event);
      say(`[run] ${describe(event)}\n`);
      if (event.kind === 'terminate') terminated = true;
      // The service's new state is set right after its event.
      if (event.kind === 'exit' || event.kind === 'give-up') setImmediate(stopWhenClientsEnded);
    },
  });
  if (ui !== undefined) {
    try {
      observer = await ObserveServer.start(system, { port: ui });
    } catch (error) {
      io.err(`ftl-ipc run: cannot serve the page on port ${ui}: ${(error as Error).message}\n`);
      return 1;
    }
    const url = new URL(observer.url);
    say(`[run] live page: ${url}\n`);
    url.pathname = '/metrics';
    say(`[run] metrics: ${url}\n`);
  }
  const signals = context.signals ?? process;
  const onSignal = (signal: string) => {
    if (stopping === undefined) stop(signal);
    else {
      say(`[run] ${signal}: terminating every service now\n`);
      void system.stop(0);
    }
  };
  signals.on('SIGINT', onSignal);
  signals.on('SIGTERM', onSignal);
  const redraw = live && setInterval(() => live.draw(system.status()), 250);

  system.start();
  await system.done;
  finished = true;
  const report = await stopping;
  if (redraw !== undefined) clearInterval(redraw);
  live?.draw(system.status());
  signals.off('SIGINT', onSignal);
  signals.off('SIGTERM', onSignal);
  await observer?.close();

  // Each exit was already told as it happened; only the total is left to say.
  if (report !== undefined) say(`[run] stopped in ${Math.round(report.ms)} ms\n`);
  const failed = system.status().some((s) => s.state === 'failed') || terminated;
  return failed ? 1 : 0;
}

/** `--ui` with an optional port (which `parseArgs` cannot express): the port, and the other args. */
function takeUi(args: readonly string[]): { ui: number | undefined; rest: string[] } {
  const at = args.indexOf('--ui');
  if (at < 0) return { ui: undefined, rest: [...args] };
  const next = args[at + 1];
  const hasPort = next !== undefined && /^\d+$/.test(next);
  const ui = hasPort ? Number(next) : 0;
  if (ui > 65535) throw new UsageError(`--ui needs a port from 0 to 65535, got ${next}`);
  return { ui, rest: [...args.slice(0, at), ...args.slice(at + (hasPort ? 2 : 1))] };
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
    case 'terminate':
      // A grace of 0 is the second signal's: the service had no time to stop.
      return event.graceMs === 0
        ? `${event.service}: terminating it now`
        : `${event.service} did not stop within ${event.graceMs} ms: terminating it`;
  }
}
