import { existsSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IpcError } from '../errors.js';

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
    throw new IpcError('INVALID_ARGUMENT', `${caller}: module ${path} not found${relative}`);
  }
  return path;
}
