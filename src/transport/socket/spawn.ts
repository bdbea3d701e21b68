import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import type { Readable } from 'node:stream';
import { isMainThread } from 'node:worker_threads';
import type { Channel } from '../../channel/channel.js';
import { IpcError, isIpcError } from '../../errors.js';
import { checkChannels, modulePath } from '../spawn-args.js';
import { workerChannels } from '../worker/spawn.js';
import { DirectReads } from './carrier.js';
import type { ConnectionOptions } from './connection.js';
import { channelOverSocket } from './listen.js';

/** The child finds its end of the socketpair on this descriptor, named in this variable. */
const FD_ENV = 'FTL_IPC_FD';
const CHANNEL_FD = 3;
const BOOTSTRAP_TYPE = 0x4654_4c00;

export interface SpawnOptions extends ConnectionOptions {
  /** Channel endpoints handed to the child, by name; they are moved (the objects here die). */
  channels?: Record<string, Channel>;
  args?: readonly string[];
  execArgv?: readonly string[];
  /** The program that runs `module` (default this node): e.g. `python3` for a Python child (docs/python.md). */
  executable?: string;
  env?: NodeJS.ProcessEnv;
  /** stdin, stdout and stderr of the child. Default 'inherit'. */
  stdio?: 'inherit' | 'ignore' | 'pipe';
}

export interface SpawnedProcess {
  readonly child: ChildProcess;
  /** Settles when the child exits. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

type Exit = Awaited<SpawnedProcess['exited']>;

/** What a failure report quotes of a piped stderr. */
const STDERR_LINES = 10;
const STDERR_BYTES = 16 * 1024;
/** A child whose handshake broke is most likely exiting: it gets this long before it is killed. */
const EXIT_GRACE_MS = 500;

/**
 * Starts `node module` with the given channels, over a socketpair on descriptor 3 that speaks
 * the socket protocol (the same transport as `connect`), and resolves once the child has called
 * {@link parentChannels} (its channels are then on their way). A string `module` resolves against the current
 * directory; pass `new URL('./child.js', import.meta.url)` for a file beside the caller. When the
 * child cannot be started, exits before taking its channels, or does not take them within
 * `handshakeTimeoutMs`, it is killed and reaped, the channels are closed (their peers see
 * PEER_CLOSED), and the error says why: its exit code or signal and, with `stdio: 'pipe'`, the
 * first lines of its stderr.
 */
export async function spawnProcess(
  module: string | URL,
  options: SpawnOptions = {},
): Promise<SpawnedProcess> {
  const path = modulePath(module, 'spawnProcess');
  checkChannels(options.channels ?? {}, 'spawnProcess');
  const names = Object.keys(options.channels ?? {});
  const channels = Object.values(options.channels ?? {});
  const io = options.stdio ?? 'inherit';
  const child = spawn(
    options.executable ?? process.execPath,
    [...(options.execArgv ?? []), path, ...(options.args ?? [])],
    {
      stdio: [io, io, io, 'pipe'],
      env: { ...(options.env ?? process.env), [FD_ENV]: String(CHANNEL_FD) },
    },
  );
  const exited = new Promise<Exit>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  // Without a listener a failed spawn (EAGAIN, EMFILE) would crash this process.
  let spawnError: Error | undefined;
  const onError = (error: Error) => {
    spawnError ??= error;
  };
  child.on('error', onError);
  // Node discards unread stdio when a child exits: a 'readable' listener keeps a piped stderr
  // buffered (not read) until the handshake is over, so a failure can quote it.
  const keepStderr = () => {};
  if (io === 'pipe') child.stderr!.on('readable', keepStderr);
  let root: Channel;
  try {
    root = await channelOverSocket(child.stdio[CHANNEL_FD] as net.Socket, false, options);
  } catch (error) {
    // A spawn that failed reports why on the next tick.
    if (child.pid === undefined) await new Promise((resolve) => setImmediate(resolve));
    // As if they had gone with the child: their peers see PEER_CLOSED, as with spawnWorker.
    for (const channel of channels) channel.close();
    child.stderr?.off('readable', keepStderr);
    throw await startFailure(child, exited, path, io, spawnError ?? error);
  }
  child.stderr?.off('readable', keepStderr);
  try {
    root.send({
      type: BOOTSTRAP_TYPE,
      data: Buffer.from(JSON.stringify(names)),
      handles: channels,
    });
  } catch (error) {
    // Checked above, so only a peer sent along with its own end gets here; the error names it.
    root.close();
    child.kill('SIGKILL');
    await exited;
    throw error;
  }
  root.close();
  child.off('error', onError);
  return { child, exited };
}

/** Kills and reaps a child that did not take its channels; the error says what became of it. */
async function startFailure(
  child: ChildProcess,
  exited: Promise<Exit>,
  path: string,
  io: NonNullable<SpawnOptions['stdio']>,
  error: unknown,
): Promise<IpcError> {
  const who = `the child process${child.pid === undefined ? '' : ` (pid ${child.pid})`} running ${path}`;
  if (child.pid === undefined) {
    return new IpcError(
      'CONNECTION_FAILED',
      `${who} could not be started: ${(error as Error).message}`,
      { cause: error },
    );
  }
  const stderr = io === 'pipe' ? head(child.stderr!, exited) : undefined;
  const timedOut = isIpcError(error, 'TIMEOUT');
  let exit = timedOut ? undefined : await within(exited, EXIT_GRACE_MS);
  const killed = exit === undefined;
  if (killed) {
    child.kill('SIGKILL');
    exit = await exited;
  }
  const lines = stderr === undefined ? undefined : nonEmptyLines(await stderr);
  if (timedOut || killed) {
    const what = timedOut
      ? `did not call parentChannels() in time (${(error as Error).message}); it was killed`
      : `broke the handshake (${(error as Error).message}); it was killed`;
    const code = killed && isIpcError(error) ? error.code : 'CONNECTION_FAILED';
    return new IpcError(code, `${who} ${what}; ${describeStderr(io, lines)}`, { cause: error });
  }
  // It ended by itself: the socket's reset is only a symptom. The cause is what it died of, as
  // its stderr says (an uncaught error, e.g. ERR_MODULE_NOT_FOUND), or else its exit.
  const ended =
    exit!.signal !== null ? `was killed by ${exit!.signal}` : `exited with code ${exit!.code}`;
  const thrown = lines?.map((line) => THROWN.exec(line)).find((m) => m !== null);
  const cause = new Error(thrown?.[0] ?? `the child process ${ended}`, { cause: error });
  if (thrown?.[1] !== undefined) Object.assign(cause, { code: thrown[1] });
  const why = thrown === undefined ? '' : `: ${thrown[0]}`;
  return new IpcError(
    'CONNECTION_FAILED',
    `${who} ${ended} before calling parentChannels()${why}; ${describeStderr(io, lines)}`,
    { cause },
  );
}

/** The line Node prints for an uncaught error: `Error [ERR_MODULE_NOT_FOUND]: Cannot find...`. */
const THROWN = /^(?:[A-Z]\w*)?Error(?: \[(ERR_\w+)\])?: .{1,1000}/;

function nonEmptyLines(text: string): string[] {
  return text.split('\n').filter((l) => l.trim() !== '');
}

function describeStderr(io: NonNullable<SpawnOptions['stdio']>, lines?: string[]): string {
  if (io === 'inherit') return "its stderr is this process's stderr";
  if (io === 'ignore') return "its stderr was ignored (stdio: 'ignore')";
  if (lines === undefined || lines.length === 0) return 'it wrote nothing to stderr';
  const shown = lines.slice(0, STDERR_LINES).map((l) => `  ${l}`);
  const more = lines.length > STDERR_LINES ? `\n  (${lines.length - STDERR_LINES} more lines)` : '';
  return `its stderr began:\n${shown.join('\n')}${more}`;
}

/** The start of what a dead child wrote to a pipe: bounded in bytes and in time. */
function head(stream: Readable, exited: Promise<Exit>): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    let timer: NodeJS.Timeout | undefined;
    const done = () => {
      clearTimeout(timer);
      stream.destroy();
      resolve(Buffer.concat(chunks).toString('utf8', 0, Math.min(bytes, STDERR_BYTES)));
    };
    // A grandchild may hold the pipe open after the child is gone: wait 1 s past its exit.
    void exited.then(() => {
      timer = setTimeout(done, 1000);
    });
    stream.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      bytes += chunk.byteLength;
      if (bytes >= STDERR_BYTES) done();
    });
    stream.once('end', done);
    stream.once('error', done);
    // A 'readable' listener left the stream paused; 'data' alone would not start it.
    stream.resume();
  });
}

/** `promise`'s value if it settles within `ms`, else undefined. */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

let fromParent: Promise<Record<string, Channel>> | undefined;

/**
 * In code started by {@link spawnProcess} or `spawnWorker`: the channels it was given, by name.
 * The same call in a child process and in a worker thread; `options` apply to a process's
 * socket. Called again, it returns the same channels.
 *
 * With the names it expects (`parentChannels(['jobs', 'events'])`), the result is typed by them
 * (no `| undefined` under `noUncheckedIndexedAccess`), and a name the parent did not give is an
 * INVALID_ARGUMENT that says which names it did give. Channels given but not named are there too.
 */
export function parentChannels(options?: ConnectionOptions): Promise<Record<string, Channel>>;
export function parentChannels<const N extends string>(
  names: readonly N[],
  options?: ConnectionOptions,
): Promise<Record<N, Channel>>;
export async function parentChannels(
  namesOrOptions: readonly string[] | ConnectionOptions = {},
  options: ConnectionOptions = {},
): Promise<Record<string, Channel>> {
  const names = Array.isArray(namesOrOptions) ? (namesOrOptions as readonly string[]) : undefined;
  const socketOptions = names === undefined ? (namesOrOptions as ConnectionOptions) : options;
  fromParent ??= isMainThread ? receiveFromParent(socketOptions) : fromSpawner();
  const channels = await fromParent;
  const missing = (names ?? []).filter((name) => !Object.hasOwn(channels, name));
  if (missing.length > 0) {
    const given = Object.keys(channels);
    throw new IpcError(
      'INVALID_ARGUMENT',
      `parentChannels: no channel named ${missing.map((n) => JSON.stringify(n)).join(', ')} was given; the parent gave ${given.length === 0 ? 'none' : given.map((n) => JSON.stringify(n)).join(', ')}`,
    );
  }
  return channels;
}

async function fromSpawner(): Promise<Record<string, Channel>> {
  const channels = workerChannels();
  if (channels === undefined) {
    throw new IpcError(
      'INVALID_ARGUMENT',
      'this worker thread was not started by spawnWorker, so it has no parent channels; a worker made with new Worker gets a channel from importEndpoint(token)',
    );
  }
  return channels;
}

async function receiveFromParent(options: ConnectionOptions): Promise<Record<string, Channel>> {
  const fd = Number(process.env[FD_ENV]);
  if (!Number.isInteger(fd)) {
    throw new IpcError(
      'INVALID_ARGUMENT',
      `${FD_ENV} is not set: this process was not started by spawnProcess`,
    );
  }
  const reads = new DirectReads();
  // Node reads `onread` here as in net.connect; @types/node only declares it for the latter.
  const socketOptions = { fd, readable: true, writable: true, onread: reads.onread };
  const socket = new net.Socket(socketOptions as net.SocketConstructorOpts);
  const root = await channelOverSocket(socket, true, options, reads);
  const message = await root.recv();
  root.close();
  let names: unknown;
  try {
    names = JSON.parse(Buffer.from(message.data).toString());
  } catch {
    names = undefined;
  }
  if (
    message.type !== BOOTSTRAP_TYPE ||
    !Array.isArray(names) ||
    names.length !== message.handles.length
  ) {
    for (const h of message.handles) h.close();
    throw new IpcError(
      'INVALID_MESSAGE',
      'the first message from the parent is not the channel list',
    );
  }
  const result: Record<string, Channel> = {};
  names.forEach((name, i) => {
    result[String(name)] = message.handles[i] as Channel;
  });
  return result;
}
