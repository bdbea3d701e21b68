import { IpcError } from '../errors.js';
import { shown } from '../shown.js';
import type { WaitOptions } from './channel.js';

export interface Waiter {
  resolve(): void;
  reject(err: IpcError): void;
}

export interface WaiterQueue<W> {
  push(waiter: W): void;
  remove(waiter: W): unknown;
}

function aborted(signal: AbortSignal | undefined): IpcError {
  return new IpcError('ABORTED', 'the operation was aborted', { cause: signal?.reason });
}

/** The largest delay setTimeout takes without overflowing to 1 ms. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/**
 * What is wrong with wait options, checked before any queue is looked at: options that are not
 * an object, a signal that is not an AbortSignal or a timeoutMs that is not a number from 0 to
 * 2^31 - 1 (INVALID_ARGUMENT), then an already-aborted signal (ABORTED).
 */
export function checkWaitOptions(options: WaitOptions): IpcError | undefined {
  if (typeof options !== 'object' || options === null)
    return new IpcError('INVALID_ARGUMENT', `options must be an object, got ${shown(options)}`);
  const { timeoutMs, signal } = options;
  if (signal !== undefined && !(signal instanceof AbortSignal))
    return new IpcError('INVALID_ARGUMENT', `signal must be an AbortSignal, got ${shown(signal)}`);
  if (
    timeoutMs !== undefined &&
    (typeof timeoutMs !== 'number' || !(timeoutMs >= 0 && timeoutMs <= MAX_TIMEOUT_MS))
  ) {
    return new IpcError(
      'INVALID_ARGUMENT',
      `timeoutMs must be a number from 0 to ${MAX_TIMEOUT_MS}, got ${shown(timeoutMs)}`,
    );
  }
  if (signal?.aborted) return aborted(signal);
  return undefined;
}

/**
 * Queues a waiter that gives up on `timeoutMs` (TIMEOUT) or `signal` (ABORTED), removing itself
 * from the queue and then calling `gaveUp`; whoever serves the queue calls the waiter's resolve
 * or reject.
 */
export function waitInQueue<W extends Waiter>(
  queue: WaiterQueue<W>,
  options: WaitOptions,
  make: (resolve: () => void, reject: (err: IpcError) => void) => W,
  what: string,
  gaveUp?: () => void,
): Promise<void> {
  const invalid = checkWaitOptions(options);
  if (invalid !== undefined) return Promise.reject(invalid);
  const { timeoutMs, signal } = options;
  return new Promise<void>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const onAbort = () => giveUp(aborted(signal));
    const cleanup = () => {
      if (timer !== undefined) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    const waiter = make(
      () => {
        cleanup();
        resolve();
      },
      (err) => {
        cleanup();
        reject(err);
      },
    );
    const giveUp = (err: IpcError) => {
      queue.remove(waiter);
      waiter.reject(err);
      gaveUp?.();
    };
    if (timeoutMs !== undefined) {
      timer = setTimeout(
        () => giveUp(new IpcError('TIMEOUT', `${what} after ${timeoutMs} ms`)),
        timeoutMs,
      );
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    queue.push(waiter);
  });
}
