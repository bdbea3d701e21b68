import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import type { Channel } from '../../channel/channel.js';
import { IpcError } from '../../errors.js';
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
  env?: NodeJS.ProcessEnv;
  /** stdin, stdout and stderr of the child. Default 'inherit'. */
  stdio?: 'inherit' | 'ignore' | 'pipe';
}

export interface SpawnedProcess {
  readonly child: ChildProcess;
  /** Settles when the child exits. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * Starts `node module` with the given channels, over a socketpair on descriptor 3 that speaks
 * the socket protocol (the same transport as `connect`). The child calls {@link parentChannels}.
 */
export async function spawnProcess(
  module: string,
  options: SpawnOptions = {},
): Promise<SpawnedProcess> {
  const names = Object.keys(options.channels ?? {});
  const channels = Object.values(options.channels ?? {});
  const io = options.stdio ?? 'inherit';
  const child = spawn(
    process.execPath,
    [...(options.execArgv ?? []), module, ...(options.args ?? [])],
    {
      stdio: [io, io, io, 'pipe'],
      env: { ...(options.env ?? process.env), [FD_ENV]: String(CHANNEL_FD) },
    },
  );
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const root = await channelOverSocket(child.stdio[CHANNEL_FD] as net.Socket, false, options);
  try {
    root.send({
      type: BOOTSTRAP_TYPE,
      data: Buffer.from(JSON.stringify(names)),
      handles: channels,
    });
  } finally {
    root.close();
  }
  return { child, exited };
}

let fromParent: Promise<Record<string, Channel>> | undefined;

/** In a child started by {@link spawnProcess}: the channels it was given, by name. */
export function parentChannels(options: ConnectionOptions = {}): Promise<Record<string, Channel>> {
  fromParent ??= receiveFromParent(options);
  return fromParent;
}

async function receiveFromParent(options: ConnectionOptions): Promise<Record<string, Channel>> {
  const fd = Number(process.env[FD_ENV]);
  if (!Number.isInteger(fd)) {
    throw new IpcError(
      'INVALID_ARGUMENT',
      `${FD_ENV} is not set: this process was not started by spawnProcess`,
    );
  }
  const socket = new net.Socket({ fd, readable: true, writable: true });
  const root = await channelOverSocket(socket, true, options);
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
