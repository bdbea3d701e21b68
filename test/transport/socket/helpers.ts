import { randomBytes } from 'node:crypto';
import diagnosticsChannel from 'node:diagnostics_channel';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import type { ChannelLimits } from '../../../src/channel/endpoint.js';
import { newCounters } from '../../../src/channel/local.js';
import type { IpcError } from '../../../src/index.js';
import { encodeHello, HEADER_BYTES, writeHeader } from '../../../src/transport/socket/frame.js';

/** The descriptor fields a raw test peer leaves empty: no origin, fresh statistics. */
export const NO_STATS = { origin: 0, counters: newCounters() };

export function child(name: string): string {
  return fileURLToPath(new URL(`./children/${name}.js`, import.meta.url));
}

/** Collects what is published on ftl-ipc:socket:error until `stop()`. */
export function socketErrors(): { errors: IpcError[]; stop(): void } {
  const errors: IpcError[] = [];
  const fn = (msg: unknown) => errors.push((msg as { error: IpcError }).error);
  diagnosticsChannel.subscribe('ftl-ipc:socket:error', fn);
  return { errors, stop: () => diagnosticsChannel.unsubscribe('ftl-ipc:socket:error', fn) };
}

export async function until(what: string, ok: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** One frame as a raw peer writes it: the 16-byte header, then `payload`. */
export function frame(
  type: number,
  id: number,
  arg: number,
  payload: Buffer = Buffer.alloc(0),
  handles = 0,
): Buffer {
  const buf = Buffer.alloc(HEADER_BYTES + payload.length);
  writeHeader(buf, 0, payload.length, type, handles, id, arg);
  payload.copy(buf, HEADER_BYTES);
  return buf;
}

/** A raw peer's HELLO without a secret, announcing `limits` for its root and `heartbeatMs`. */
export function rawHello(limits: ChannelLimits, heartbeatMs = 0): Buffer {
  return encodeHello({ flags: 0, nonce: randomBytes(32), limits, heartbeatMs });
}

/** A raw socket connected to `path`; it reads nothing until resumed. */
export async function rawPeer(path: string): Promise<net.Socket> {
  const raw = net.connect(path);
  raw.on('error', () => {});
  await new Promise((resolve) => raw.once('connect', resolve));
  return raw;
}
