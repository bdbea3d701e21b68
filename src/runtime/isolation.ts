/**
 * The seam between the supervisor and the transports: start a service instance in a worker
 * thread or a child process, handing it only its startup channel (everything else moves over
 * that channel). Until the worker and socket transports land, both go over {@link Bridge}; then
 * the thread launcher passes `exportEndpoint(startup)` in `workerData` and the process launcher
 * uses `spawnProcess(host, { channels: { startup } })`, and nothing else changes.
 */
import { type ChildProcess, fork } from 'node:child_process';
import type { Readable } from 'node:stream';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import type { Channel } from '../channel/index.js';
import { Bridge, type WireMessage } from './bridge.js';
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

const HOST = new URL('./host.js', import.meta.url);
const BOOT_ENV = 'FTL_IPC_BOOT';

interface HostData {
  readonly boot: BootInfo;
  readonly startupId: number;
}

/** Starts `boot.module` isolated as asked, with `startup` (moved) as its startup channel. */
export async function launch(
  isolation: Isolation,
  boot: BootInfo,
  startup: Channel,
): Promise<Instance> {
  let post: (m: WireMessage) => void = () => {};
  const bridge = new Bridge({ post: (m) => post(m) }, 0);
  const data: HostData = { boot, startupId: bridge.attach(startup) };
  const instance =
    isolation === 'thread' ? launchThread(data, bridge) : launchProcess(data, bridge);
  post = instance.post;
  void instance.exited.then(() => bridge.closeAll());
  return instance;
}

function launchThread(
  data: HostData,
  bridge: Bridge,
): Instance & { post: (m: WireMessage) => void } {
  const worker = new Worker(HOST, { workerData: data, stdout: true, stderr: true });
  worker.on('message', (m: WireMessage) => bridge.receive(m));
  // An uncaught error ends the worker with code 1; the error itself went to its stderr.
  worker.on('error', () => {});
  return {
    id: `thread ${worker.threadId}`,
    stdout: worker.stdout,
    stderr: worker.stderr,
    exited: new Promise((resolve) =>
      worker.once('exit', (code) => resolve({ code, signal: null })),
    ),
    terminate: () => void worker.terminate(),
    post: (m) => worker.postMessage(m),
  };
}

function launchProcess(
  data: HostData,
  bridge: Bridge,
): Instance & { post: (m: WireMessage) => void } {
  const child: ChildProcess = fork(HOST, [], {
    serialization: 'advanced',
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    env: { ...process.env, [BOOT_ENV]: JSON.stringify(data) },
  });
  child.on('message', (m) => bridge.receive(m as WireMessage));
  return {
    id: `pid ${child.pid}`,
    stdout: child.stdout!,
    stderr: child.stderr!,
    exited: new Promise((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    ),
    terminate: () => void child.kill('SIGKILL'),
    // A child that is exiting may fail a send (EPIPE); its exit is what the supervisor watches.
    post: (m) => {
      if (child.connected) child.send(m, undefined, {}, () => {});
    },
  };
}

/**
 * In the service's thread or process: its boot info and startup channel, and `flush`, which
 * resolves once what the service sent has left and lets the event loop end (call it last).
 */
export async function childStartup(): Promise<{
  boot: BootInfo;
  startup: Channel;
  flush: () => Promise<void>;
}> {
  if (!isMainThread) {
    const port = parentPort!;
    const data = workerData as HostData;
    const bridge = new Bridge({ post: (m) => port.postMessage(m) }, 1);
    port.on('message', (m: WireMessage) => bridge.receive(m));
    // Posted messages are already in the parent's queue: only the bridge's own pumps must end.
    return {
      boot: data.boot,
      startup: bridge.open(data.startupId),
      flush: async () => {
        await bridge.drained(1000);
        port.close();
      },
    };
  }
  const data = JSON.parse(process.env[BOOT_ENV] ?? 'null') as HostData;
  let sending = Promise.resolve();
  const bridge = new Bridge(
    {
      post: (m) => {
        if (!process.connected) return;
        sending = new Promise((resolve) => process.send!(m, undefined, {}, () => resolve()));
      },
    },
    1,
  );
  process.on('message', (m) => bridge.receive(m as WireMessage));
  process.on('disconnect', () => bridge.closeAll());
  // The supervisor may have died while this process was still loading.
  if (!process.connected) setImmediate(() => bridge.closeAll());
  // Ctrl-C reaches the whole process group; the supervisor decides when this service stops.
  process.on('SIGINT', () => {});
  return {
    boot: data.boot,
    startup: bridge.open(data.startupId),
    flush: async () => {
      await bridge.drained(1000);
      await sending;
      process.disconnect();
    },
  };
}
