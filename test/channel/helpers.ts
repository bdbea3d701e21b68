import assert from 'node:assert/strict';
import { setImmediate as tick } from 'node:timers/promises';
import { type Channel, type IpcErrorCode, isIpcError } from '../../src/index.js';

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

/**
 * Waits until `channel` has `count` messages queued. In one thread a send lands at once; across
 * threads or processes it arrives a little later, and tests that inspect the receiver's queue
 * right after sending wait for it here. Gives up after five seconds.
 */
export async function delivered(channel: Channel, count: number): Promise<void> {
  const deadline = Date.now() + 5000;
  while (channel.stats.queuedMessages < count) {
    assert.ok(Date.now() < deadline, `only ${channel.stats.queuedMessages} of ${count} arrived`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}
