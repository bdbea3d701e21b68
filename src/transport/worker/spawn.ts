/**
 * spawnWorker: the worker-thread twin of spawnProcess, on the public token API. The tokens and a
 * port for the worker's "I have them" travel in `workerData`, so the started code needs nothing
 * but `parentChannels()`, the same call as in a child process.
 */
import {
  MessageChannel,
  type MessagePort,
  receiveMessageOnPort,
  Worker,
  type WorkerOptions,
  workerData,
} from 'node:worker_threads';
import type { Channel } from '../../channel/channel.js';
import { IpcError, isIpcError } from '../../errors.js';
import { checkChannels, modulePath } from '../spawn-args.js';
import { type EndpointToken, exportEndpoint, importEndpoint } from './index.js';

/** The key of `workerData` that carries the channels; the rest of `workerData` is not used. */
const BOOT_KEY = 'ftl-ipc:channels';

interface Boot {
  readonly names: readonly string[];
  readonly tokens: readonly EndpointToken[];
  readonly ready: MessagePort;
}

export interface SpawnWorkerOptions
  extends Omit<WorkerOptions, 'workerData' | 'transferList' | 'eval'> {
  /** Channel endpoints handed to the worker, by name; they are moved (the objects here die). */
  channels?: Record<string, Channel>;
  /** How long the worker has to call `parentChannels()`. Default 10000. */
  handshakeTimeoutMs?: number;
}

export interface SpawnedWorker {
  readonly worker: Worker;
  /** Settles when the worker exits. */
  readonly exited: Promise<{ code: number }>;
}

/**
 * Starts `module` in a worker thread with the given channels, and resolves once the worker has
 * called `parentChannels()` and holds them. A string `module` resolves against the current
 * directory, as `new Worker` does; pass `new URL('./worker.js', import.meta.url)` for a file
 * beside the caller. Data for the worker goes in `argv`, `env` or a message on a channel:
 * `workerData` carries the channels. When the worker fails to load, exits first, or does not
 * take its channels within `handshakeTimeoutMs`, it is terminated and the error says why
 * (CONNECTION_FAILED, with the worker's error as `cause`, or TIMEOUT).
 */
export async function spawnWorker(
  module: string | URL,
  options: SpawnWorkerOptions = {},
): Promise<SpawnedWorker> {
  const path = modulePath(module, 'spawnWorker');
  const { channels = {}, handshakeTimeoutMs = 10_000, ...workerOptions } = options;
  if (!(Number.isInteger(handshakeTimeoutMs) && handshakeTimeoutMs > 0)) {
    throw new IpcError(
      'INVALID_ARGUMENT',
      `spawnWorker: handshakeTimeoutMs must be a positive integer, got ${handshakeTimeoutMs}`,
    );
  }
  checkChannels(channels, 'spawnWorker');
  const tokens: EndpointToken[] = [];
  try {
    for (const channel of Object.values(channels)) tokens.push(exportEndpoint(channel));
  } catch (error) {
    // Too large a ring, say: the channels exported so far are closed, so their peers hear of it.
    for (const token of tokens) importEndpoint(token).close();
    throw error;
  }
  const { port1: ready, port2 } = new MessageChannel();
  const boot: Boot = { names: Object.keys(channels), tokens, ready: port2 };
  const worker = new Worker(path, {
    ...workerOptions,
    workerData: { [BOOT_KEY]: boot },
    transferList: [...tokens.flatMap((t) => t.transfer), port2],
  });
  const threadId = worker.threadId;
  const exited = new Promise<{ code: number }>((resolve) =>
    worker.once('exit', (code) => resolve({ code })),
  );
  // Until the worker holds its channels its errors are ours to report; after, the caller's.
  let failure: Error | undefined;
  const onError = (error: Error) => {
    failure ??= error;
  };
  worker.on('error', onError);
  let timer: NodeJS.Timeout | undefined;
  const outcome = await new Promise<'ready' | 'exited' | 'late'>((resolve) => {
    ready.once('message', () => resolve('ready'));
    // A worker that took its channels and ended at once: its "ready" may not be dispatched yet.
    void exited.then(() => resolve(receiveMessageOnPort(ready) ? 'ready' : 'exited'));
    timer = setTimeout(() => resolve('late'), handshakeTimeoutMs);
  });
  clearTimeout(timer);
  ready.close();
  if (outcome === 'ready') {
    worker.off('error', onError);
    return { worker, exited };
  }
  const who = `the worker thread (thread ${threadId}) running ${path}`;
  if (outcome === 'late') await worker.terminate();
  else await exited;
  closeUnclaimed(tokens);
  if (outcome === 'late') {
    throw new IpcError(
      'TIMEOUT',
      `${who} did not call parentChannels() within ${handshakeTimeoutMs} ms; it was terminated`,
    );
  }
  const { code } = await exited;
  const why = failure === undefined ? '' : `: ${failure.message}`;
  throw new IpcError(
    'CONNECTION_FAILED',
    `${who} exited with code ${code} before calling parentChannels()${why}`,
    { cause: failure },
  );
}

/**
 * Closes the channels of tokens the dead worker never imported, so their peers see PEER_CLOSED.
 * One it did import was its own, and closed as its thread ended; importing it again throws.
 */
function closeUnclaimed(tokens: readonly EndpointToken[]): void {
  for (const token of tokens) {
    try {
      importEndpoint(token).close();
    } catch (error) {
      if (!isIpcError(error, 'INVALID_ARGUMENT')) throw error;
    }
  }
}

/** In a worker started by {@link spawnWorker}: its channels; undefined in any other thread. */
export function workerChannels(): Record<string, Channel> | undefined {
  const boot =
    typeof workerData === 'object' && workerData !== null
      ? ((workerData as Record<string, unknown>)[BOOT_KEY] as Boot | undefined)
      : undefined;
  if (boot === undefined) return undefined;
  const result: Record<string, Channel> = {};
  boot.names.forEach((name, i) => {
    result[name] = importEndpoint(boot.tokens[i]!);
  });
  boot.ready.postMessage('ready');
  boot.ready.close();
  return result;
}
