/**
 * The seam between the supervisor and the transports: start a service instance in a worker
 * thread or a child process, handing it only its startup channel (everything else moves over
 * that channel as handles). A thread is started with `spawnWorker` (the worker transport), a
 * process with `spawnProcess` (the socket transport); either way the service's host takes the
 * channel with `parentChannels()`.
 */
import { delimiter } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { isMainThread } from 'node:worker_threads';
import type { Channel } from '../channel/index.js';
import { parentChannels, spawnProcess } from '../transport/socket/index.js';
import { spawnWorker } from '../transport/worker/spawn.js';
import type { Isolation } from './spec.js';
import type { BootInfo } from './startup.js';

export interface ExitInfo {
  /** The exit code; null when killed by a signal. */
  readonly code: number | null;
  readonly signal: string | null;
}

/** One running copy of a service. */
export interface Instance {
  /** `pid 123` or `thread 4`, for people. */
  readonly id: string;
  readonly stdout: Readable;
  readonly stderr: Readable;
  readonly exited: Promise<ExitInfo>;
  /** Ends it at once, without a chance to clean up. */
  terminate(): void;
}

const HOST = fileURLToPath(new URL('./host.js', import.meta.url));
/** The ftl_ipc package (python/ in this repository), put first on a Python service's path. */
const PYTHON_PACKAGE = fileURLToPath(new URL('../../../python', import.meta.url));
/** Names the Python interpreter for `python:` services; default python3. */
const PYTHON_ENV = 'FTL_IPC_PYTHON';

function pythonPath(existing: string | undefined): string {
  return existing ? `${PYTHON_PACKAGE}${delimiter}${existing}` : PYTHON_PACKAGE;
}

/**
 * The supervisor's profiling flags (`--cpu-prof`, `--heap-prof` and their options), passed on to
 * process services, so `node --cpu-prof …/main.js run` profiles every service, as it does every
 * thread (workers take the flags by themselves). Node refuses them in NODE_OPTIONS.
 */
const PROFILE_ARGV = process.execArgv.filter((a) => /^--(cpu|heap)-prof/.test(a));

/** The boot info travels in the environment, which threads and processes both have. */
const BOOT_ENV = 'FTL_IPC_BOOT';

/** Starts `boot.module` isolated as asked, with `startup` (moved) as its startup channel. */
export async function launch(
  isolation: Isolation,
  boot: BootInfo,
  startup: Channel,
): Promise<Instance> {
  const env = { ...process.env, [BOOT_ENV]: JSON.stringify(boot) };
  if (isolation === 'thread') {
    const { worker, exited } = await spawnWorker(HOST, {
      channels: { startup },
      env,
      stdout: true,
      stderr: true,
    });
    // An uncaught error ends the worker with code 1; the host already wrote it to its stderr.
    worker.on('error', () => {});
    return {
      id: `thread ${worker.threadId}`,
      stdout: worker.stdout,
      stderr: worker.stderr,
      exited: exited.then(({ code }) => ({ code, signal: null })),
      terminate: () => void worker.terminate(),
    };
  }
  const { child, exited } =
    boot.language === 'python'
      ? await spawnProcess(boot.module, {
          executable: process.env[PYTHON_ENV] ?? 'python3',
          execArgv: ['-m', 'ftl_ipc.host'],
          channels: { startup },
          stdio: 'pipe',
          env: { ...env, PYTHONPATH: pythonPath(process.env.PYTHONPATH) },
        })
      : boot.language === 'rust'
        ? await spawnProcess(boot.module, {
            executable: boot.module,
            channels: { startup },
            stdio: 'pipe',
            env,
          })
        : await spawnProcess(HOST, {
            channels: { startup },
            stdio: 'pipe',
            env,
            execArgv: PROFILE_ARGV,
          });
  child.stdin?.end();
  return {
    id: `pid ${child.pid}`,
    stdout: child.stdout!,
    stderr: child.stderr!,
    exited,
    terminate: () => void child.kill('SIGKILL'),
  };
}

/** In the service's thread or process: its boot info and startup channel. */
export async function childStartup(): Promise<{ boot: BootInfo; startup: Channel }> {
  const boot = JSON.parse(process.env[BOOT_ENV] ?? 'null') as BootInfo;
  // Ctrl-C reaches the whole process group; the supervisor decides when this service stops.
  if (isMainThread) process.on('SIGINT', () => {});
  const { startup } = await parentChannels(['startup']);
  return { boot, startup };
}
