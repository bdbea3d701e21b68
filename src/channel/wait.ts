import { IpcError } from '../errors.js';
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

/**
 * Queues a waiter that gives up on `timeoutMs` (TIMEOUT) or `signal` (ABORTED), removing itself
 * from the queue and then calling `gaveUp`; whoever serves the queue calls the waiter's resolve
 * or reject.
 */
export function waitInQueue<W extends Waiter>(
  queue: WaiterQueue<W>,
  { timeoutMs, signal }: WaitOptions,
  make: (resolve: () => void, reject: (err: IpcError) => void) => W,
  what: string,
  gaveUp?: () => void,
): Promise<void> {
  if (signal?.aborted) return Promise.reject(aborted(signal));
  if (timeoutMs !== undefined && !(timeoutMs >= 0)) {
    return Promise.reject(
      new IpcError('INVALID_ARGUMENT', `timeoutMs must be >= 0, got ${String(timeoutMs)}`),
    );
  }
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
