import diagnosticsChannel from 'node:diagnostics_channel';
import { fileURLToPath } from 'node:url';
import { newCounters } from '../../../src/channel/local.js';
import type { IpcError } from '../../../src/index.js';

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
