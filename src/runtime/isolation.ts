/**
 * The seam between the supervisor and the transports: start a service instance in a worker
 * thread or a child process, handing it only its startup channel (everything else moves over
 * that channel as handles). A thread gets the channel through the worker transport
 * (`exportEndpoint` in its `workerData`), a process through the socket transport
 * (`spawnProcess`).
 */
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { isMainThread, Worker, workerData } from 'node:worker_threads';
import type { Channel } from '../channel/index.js';
import { parentChannels, spawnProcess } from '../transport/socket/index.js';
import { type EndpointToken, exportEndpoint, importEndpoint } from '../transport/worker/index.js';
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
const BOOT_ENV = 'FTL_IPC_BOOT';

interface ThreadData {
  readonly boot: BootInfo;
  readonly token: EndpointToken;
}

/** Starts `boot.module` isolated as asked, with `startup` (moved) as its startup channel. */
export async function launch(
  isolation: Isolation,
  boot: BootInfo,
  startup: Channel,
): Promise<Instance> {
  return isolation === 'thread' ? launchThread(boot, startup) : launchProcess(boot, startup);
}

function launchThread(boot: BootInfo, startup: Channel): Instance {
  const token = exportEndpoint(startup);
  const data: ThreadData = { boot, token };
  const worker = new Worker(HOST, {
    workerData: data,
    transferList: token.transfer,
    stdout: true,
    stderr: true,
  });
  // An uncaught error ends the worker with code 1; the host already wrote it to its stderr.
  worker.on('error', () => {});
  return {
    id: `thread ${worker.threadId}`,
    stdout: worker.stdout,
    stderr: worker.stderr,
    exited: new Promise((resolve) =>
      worker.once('exit', (code) => resolve({ code, signal: null })),
    ),
    terminate: () => void worker.terminate(),
  };
}

async function launchProcess(boot: BootInfo, startup: Channel): Promise<Instance> {
  const { child, exited } = await spawnProcess(HOST, {
    channels: { startup },
    stdio: 'pipe',
    env: { ...process.env, [BOOT_ENV]: JSON.stringify(boot) },
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
  if (!isMainThread) {
    const { boot, token } = workerData as ThreadData;
    return { boot, startup: importEndpoint(token) };
  }
  const boot = JSON.parse(process.env[BOOT_ENV] ?? 'null') as BootInfo;
  // Ctrl-C reaches the whole process group; the supervisor decides when this service stops.
  process.on('SIGINT', () => {});
  const { startup } = await parentChannels();
  return { boot, startup: startup! };
}
