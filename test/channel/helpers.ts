import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
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

/**
 * Resolves to 'pending' if `promise` has not settled within `ms`. A few event-loop turns are
 * not enough: across threads or processes a wrong early settlement arrives a round trip later.
 */
export async function state(
  promise: Promise<unknown>,
  ms = 100,
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
  await delay(ms);
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

/** This thread's memory use after two full GCs: what is really held, not garbage not yet freed. */
export function liveMemory(): NodeJS.MemoryUsage {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  gc();
  gc();
  return process.memoryUsage();
}

/**
 * `promise`, or a rejection naming `what` once `ms` passed without it settling: a wait that
 * would hang on a lost wake-up fails the test by its name, in time for its cleanup to run.
 */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still waiting after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}
