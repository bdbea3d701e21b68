import { existsSync } from 'node:fs';
import { basename, isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Channel } from '../channel/channel.js';
import { kHandleState } from '../channel/handle.js';
import { IpcError } from '../errors.js';

/** The checks spawnProcess and spawnWorker make before they start anything. */

/**
 * The file `spawnProcess` or `spawnWorker` runs. A URL is taken as is (the way to name a file
 * beside the calling module: `new URL('./child.js', import.meta.url)`); a relative path resolves
 * against the current directory, as `node` and `new Worker` do. Checked here so that a wrong path
 * is reported as such instead of as a child that died.
 */
export function modulePath(module: string | URL, caller: string): string {
  let path: string;
  try {
    path = module instanceof URL ? fileURLToPath(module) : resolve(module);
  } catch (error) {
    throw new IpcError('INVALID_ARGUMENT', `${caller}: ${String(module)} is not a file path`, {
      cause: error,
    });
  }
  if (!existsSync(path)) {
    const relative =
      module instanceof URL || isAbsolute(module)
        ? ''
        : ` (a relative path resolves against the current directory, ${process.cwd()}; for a path relative to the calling module pass new URL('${module}', import.meta.url))`;
    throw new IpcError(
      'INVALID_ARGUMENT',
      `${caller}: module ${path} not found${relative}${compiledHint(path)}`,
    );
  }
  return path;
}

/** For a missing `.ts` module: Node runs its compiled `.js`, as `ftl-ipc run` says too. */
function compiledHint(path: string): string {
  const ts = /\.([cm]?)ts$/.exec(path);
  if (ts === null) return '';
  const js = `${path.slice(0, ts.index)}.${ts[1]}js`;
  const there = existsSync(js) ? `; ${js} exists` : '';
  return `; a .ts module runs from its compiled .js: name the .js (new URL('./${basename(js)}', import.meta.url) in the compiled caller names the file beside it)${there}`;
}

/**
 * Checks that every channel to hand over is a live Channel, listed once, so that a mistake is
 * reported by its name and nothing is started (or moved) in vain.
 */
export function checkChannels(channels: Record<string, Channel>, caller: string): void {
  const seen = new Map<unknown, string>();
  for (const [name, channel] of Object.entries(channels)) {
    if (!(channel instanceof Channel)) {
      throw new IpcError(
        'INVALID_ARGUMENT',
        `${caller}: channels.${name} is not a Channel, got ${String(channel)}`,
      );
    }
    if (channel[kHandleState]() === undefined) {
      throw new IpcError(
        'HANDLE_NOT_MOVABLE',
        `${caller}: channels.${name} is closed or was already moved`,
      );
    }
    const twin = seen.get(channel);
    if (twin !== undefined) {
      throw new IpcError(
        'HANDLE_NOT_MOVABLE',
        `${caller}: channels.${name} is the same channel as channels.${twin}`,
      );
    }
    seen.set(channel, name);
  }
}
