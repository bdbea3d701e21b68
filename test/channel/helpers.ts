import assert from 'node:assert/strict';
import { setImmediate as tick } from 'node:timers/promises';
import { type IpcErrorCode, isIpcError } from '../../src/index.js';

/** Asserts that `fn` throws an IpcError with `code`. */
export function throwsCode(fn: () => unknown, code: IpcErrorCode): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isIpcError(err), `expected an IpcError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return true;
  });
}

/** Asserts that `promise` rejects with an IpcError with `code`. */
export async function rejectsCode(promise: Promise<unknown>, code: IpcErrorCode): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(isIpcError(err), `expected an IpcError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return true;
  });
}

/** Resolves to 'pending' if `promise` has not settled after a few event-loop turns. */
export async function state(
  promise: Promise<unknown>,
): Promise<'pending' | 'resolved' | 'rejected'> {
  let result: 'pending' | 'resolved' | 'rejected' = 'pending';
  promise.then(
    () => {
      result = 'resolved';
    },
    () => {
      result = 'rejected';
    },
  );
  for (let i = 0; i < 5; i++) await tick();
  return result;
}

export function bytes(...values: number[]): Uint8Array {
  return Uint8Array.from(values);
}
