/** Shared by the tests of spawnProcess, spawnWorker and the runtime that starts both. */
import assert from 'node:assert/strict';
import { type IpcError, isIpcError } from '../../src/index.js';

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The rejection of `promise`, which must be an IpcError with `code`. */
export async function failure(promise: Promise<unknown>, code: string): Promise<IpcError> {
  const error = await promise.then(
    () => assert.fail('expected a rejection'),
    (e: unknown) => e,
  );
  assert.ok(isIpcError(error), String(error));
  assert.equal(error.code, code, error.message);
  return error;
}
