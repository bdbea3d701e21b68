import type { WaitOptions } from '../channel/channel.js';
import { Deque } from '../channel/deque.js';
import { waitInQueue } from '../channel/wait.js';
import { IpcError } from '../errors.js';

export type PipeSide = 'producer' | 'consumer';

interface ConditionWaiter {
  ready(): boolean;
  resolve(): void;
  reject(err: IpcError): void;
}

interface SideState {
  waiters: Deque<ConditionWaiter>;
  closed: boolean;
  onClose: (() => void) | undefined;
}

/**
 * Wake-ups between the two ends of a pipe living in one thread: each commit wakes the other
 * side's waiters, whose conditions are checked again. A waiter fails with PEER_CLOSED once the
 * other side has closed and its condition can no longer come true.
 */
export class PipeSignals {
  readonly #sides: Record<PipeSide, SideState> = {
    producer: { waiters: new Deque(), closed: false, onClose: undefined },
    consumer: { waiters: new Deque(), closed: false, onClose: undefined },
  };

  wait(side: PipeSide, ready: () => boolean, options: WaitOptions, what: string): Promise<void> {
    if (ready()) return Promise.resolve();
    if (this.#sides[other(side)].closed) return Promise.reject(peerClosed(side));
    return waitInQueue(
      this.#sides[side].waiters,
      options,
      (resolve, reject) => ({ ready, resolve, reject }),
      what,
    );
  }

  /** The other side of `side` made progress: check `side`'s waiters again. */
  notify(side: PipeSide): void {
    const waiters = this.#sides[side].waiters;
    if (waiters.length === 0) return;
    const peerGone = this.#sides[other(side)].closed;
    for (const waiter of waiters.drain()) {
      if (waiter.ready()) waiter.resolve();
      else if (peerGone) waiter.reject(peerClosed(side));
      else waiters.push(waiter);
    }
  }

  /** Calls `listener` when `side` closes (one listener a side: the live object of the other end). */
  onClose(side: PipeSide, listener: () => void): void {
    this.#sides[side].onClose = listener;
  }

  /** `side`'s object is gone (sent away): its waiters fail, the other side is not told. */
  release(side: PipeSide): void {
    const err = new IpcError('CLOSED', 'the pipe end was sent away while this operation waited');
    for (const waiter of this.#sides[side].waiters.drain()) waiter.reject(err);
  }

  closed(side: PipeSide): void {
    const state = this.#sides[side];
    state.closed = true;
    const err = new IpcError('CLOSED', 'the pipe end was closed while this operation waited');
    for (const waiter of state.waiters.drain()) waiter.reject(err);
    this.notify(other(side));
    state.onClose?.();
  }
}

function other(side: PipeSide): PipeSide {
  return side === 'producer' ? 'consumer' : 'producer';
}

function peerClosed(side: PipeSide): IpcError {
  return new IpcError(
    'PEER_CLOSED',
    side === 'producer' ? 'the pipe consumer is closed' : 'the pipe producer is closed and drained',
  );
}
