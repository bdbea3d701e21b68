import type { WaitOptions } from '../channel/channel.js';
import { Deque } from '../channel/deque.js';
import { waitInQueue } from '../channel/wait.js';
import { IpcError } from '../errors.js';
import { KIND_PIPE, onThreadsDied, onThreadWake, PIPE_KEY } from '../shm/arena.js';
import { holdThread, releaseThread, resolveWakePolicy, Spinner, waitAsync } from '../shm/wake.js';
import {
  ARRIVALS,
  type ByteRing,
  CONSUMER_CLOSED,
  CONSUMER_OWNER,
  CONSUMER_SLEEPING,
  CONSUMER_WOKEN,
  PRODUCER_CLOSED,
  PRODUCER_OWNER,
  PRODUCER_SLEEPING,
  PRODUCER_WOKEN,
  READ,
  reapRing,
  WRITE,
} from './ring.js';

export type PipeSide = 'producer' | 'consumer';

interface ConditionWaiter {
  ready(): boolean;
  resolve(): void;
  reject(err: IpcError): void;
}

interface SideState {
  waiters: Deque<ConditionWaiter>;
  onClose: (() => void) | undefined;
  /** True while a `waitAsync` watches the ring for this side. */
  watching: boolean;
  /** Once split: a short busy-wait before sleeping, under the thread's wake policy. */
  spinner: Spinner | undefined;
  /** A wake-up of this side, due when this thread next turns its event loop. */
  wakeDue: NodeJS.Immediate | undefined;
  /** This side's end left this object: closed or sent away. Its watch must not touch the ring. */
  gone: boolean;
}

const CLOSED_FLAG: Record<PipeSide, number> = {
  producer: PRODUCER_CLOSED,
  consumer: CONSUMER_CLOSED,
};
/** The ring word each side's waiters wait to see change: the other side's progress. */
const WATCHED_WORD: Record<PipeSide, number> = { producer: READ, consumer: WRITE };
const SLEEPING_WORD: Record<PipeSide, number> = {
  producer: PRODUCER_SLEEPING,
  consumer: CONSUMER_SLEEPING,
};
const WOKEN_WORD: Record<PipeSide, number> = { producer: PRODUCER_WOKEN, consumer: CONSUMER_WOKEN };
const OWNER_WORD: Record<PipeSide, number> = { producer: PRODUCER_OWNER, consumer: CONSUMER_OWNER };

/**
 * Split pipes with an end in this thread: when another thread wakes this one, each looks whether
 * its far end closed, as a closed port used to tell it.
 */
const splitHere = new Set<PipeSignals>();
onThreadWake((_arena, keys) => {
  // Pipes between threads are few: a key for any pipe looks at all of them.
  if (keys !== null && ![...keys].some((key) => (key & PIPE_KEY) !== 0)) return;
  for (const signals of splitHere) signals.poll();
});
onThreadsDied((arena, dead) => {
  for (const offset of arena.blocks(KIND_PIPE)) reapRing(arena, offset, dead);
});

const RECHECK_MS = 100;

/**
 * Wake-ups between the two ends of a pipe. While both ends live in one thread, a commit wakes
 * the other side's waiters directly. Once an end has left for another thread the pipe is split:
 * each commit also notifies on the ring word the other side watches, and a side with waiters
 * watches its word with `Atomics.waitAsync`. Closed flags live in the ring either way.
 */
export class PipeSignals {
  readonly ring: ByteRing;
  #split = false;
  /** The side that lives in another thread, once split, and whether its close was reported. */
  #far: PipeSide | undefined;
  #farReported = false;
  readonly #sides: Record<PipeSide, SideState> = {
    producer: newSide(),
    consumer: newSide(),
  };

  constructor(ring: ByteRing) {
    this.ring = ring;
  }

  /** The signals of an end that arrived from another thread. */
  static arrived(ring: ByteRing, side: PipeSide): PipeSignals {
    const signals = new PipeSignals(ring);
    signals.#split = true;
    signals.#far = other(side);
    Atomics.store(ring.header, OWNER_WORD[side], ring.arena?.thread ?? 0);
    Atomics.add(ring.header, ARRIVALS, 1);
    splitHere.add(signals);
    return signals;
  }

  /** `side` leaves for another thread: from now on the pipe is split. */
  split(side: PipeSide): void {
    this.#split = true;
    Atomics.store(this.ring.header, OWNER_WORD[side], 0);
    if (this.#far === undefined) {
      this.#far = side;
      splitHere.add(this);
      // Waiters from before the split waited for local wake-ups, which now come from afar.
      if (this.#sides[other(side)].waiters.length > 0) void this.#watch(other(side));
    } else {
      // Both ends have left this object.
      splitHere.delete(this);
    }
  }

  /** `far` died on its way, in a thread that never took it: as if it closed there. */
  lost(far: PipeSide): void {
    const last = this.ring.markClosed(CLOSED_FLAG[far]);
    this.poll();
    this.#notifyThreadOf(other(far));
    if (last) this.ring.dispose();
  }

  /** Wakes the thread that holds `side`, which then looks at this pipe. */
  #notifyThreadOf(side: PipeSide): void {
    const ring = this.ring;
    ring.arena?.notifyThread(Atomics.load(ring.header, OWNER_WORD[side]), ring.offset | PIPE_KEY);
  }

  /** Reports a far end that closed or whose thread died; see `splitHere`. */
  poll(): void {
    const far = this.#far;
    if (far === undefined || this.#farReported || !this.isClosed(far)) return;
    this.#farReported = true;
    splitHere.delete(this);
    this.notify(other(far), true);
    this.#sides[far].onClose?.();
  }

  isClosed(side: PipeSide): boolean {
    return (this.ring.closedFlags & CLOSED_FLAG[side]) !== 0;
  }

  wait(side: PipeSide, ready: () => boolean, options: WaitOptions, what: string): Promise<void> {
    if (ready()) return Promise.resolve();
    if (this.isClosed(other(side))) return Promise.reject(peerClosed(side));
    if (this.#split) {
      // A wait for the other side must not wait on a wake-up of it that this thread holds back.
      this.#flush(other(side));
      // The other thread is usually mid-way through its next chunk: a short spin beats a sleep.
      const state = this.#sides[side];
      state.spinner ??= new Spinner(resolveWakePolicy());
      if (state.spinner.spin(ready)) return Promise.resolve();
    }
    const waiting = waitInQueue(
      this.#sides[side].waiters,
      options,
      (resolve, reject) => ({ ready, resolve, reject }),
      what,
    );
    if (this.#split) void this.#watch(side);
    return waiting;
  }

  /**
   * `side`'s counterpart made progress: wake `side`, here or in its thread. Across threads a
   * wake-up costs microseconds, so a sleeping side is woken at once only when half the pipe is
   * ready for it (or `now`, for a close); otherwise when this thread next turns its event loop
   * or waits on the pipe itself. Not at the end of the task: a loop of awaited reads or writes
   * ends a task per chunk, and woke the other side per chunk, each time to find one chunk.
   */
  notify(side: PipeSide, now = false): void {
    this.#check(side);
    if (!this.#split) return;
    const state = this.#sides[side];
    const ready = side === 'consumer' ? this.ring.buffered : this.ring.free;
    if (now || ready * 2 >= this.ring.capacity) {
      this.#flush(side);
      this.#wake(side);
    } else {
      state.wakeDue ??= setImmediate(() => this.#flush(side));
    }
  }

  /** Makes a held-back wake-up of `side` now, if one is due. */
  #flush(side: PipeSide): void {
    const state = this.#sides[side];
    if (state.wakeDue === undefined) return;
    clearImmediate(state.wakeDue);
    state.wakeDue = undefined;
    // The notifying end closed meanwhile: its close woke `side`, and the ring may be freed.
    if (!this.#sides[other(side)].gone) this.#wake(side);
  }

  #wake(side: PipeSide): void {
    const header = this.ring.header;
    if (
      Atomics.load(header, SLEEPING_WORD[side]) !== 0 &&
      Atomics.compareExchange(header, WOKEN_WORD[side], 0, 1) === 0
    ) {
      Atomics.notify(header, WATCHED_WORD[side]);
    }
  }

  /** Calls `listener` when `side` closes (one listener a side: the live object of the other end). */
  onClose(side: PipeSide, listener: () => void): void {
    this.#sides[side].onClose = listener;
  }

  /** `side`'s object is gone (sent away): its waiters fail, the other side is not told. */
  release(side: PipeSide): void {
    // What this end wrote or freed before it left must still wake the other side.
    this.#flush(other(side));
    this.#sides[side].gone = true;
    const err = new IpcError('CLOSED', 'the pipe end was sent away while this operation waited');
    for (const waiter of this.#sides[side].waiters.drain()) waiter.reject(err);
  }

  /**
   * `side`'s object was sent over a socket or NATS, whose link now reads or writes its ring in
   * this thread: its waits must watch the ring again, or a far end in another thread would
   * never wake it.
   */
  adopt(side: PipeSide): void {
    this.#sides[side].gone = false;
  }

  /** `side` closes here; the call that leaves both ends closed frees the ring. */
  closed(side: PipeSide): void {
    const last = this.ring.markClosed(CLOSED_FLAG[side]);
    const state = this.#sides[side];
    state.gone = true;
    const err = new IpcError('CLOSED', 'the pipe end was closed while this operation waited');
    for (const waiter of state.waiters.drain()) waiter.reject(err);
    this.notify(other(side), true);
    if (this.#split) {
      splitHere.delete(this);
      this.#notifyThreadOf(other(side));
    }
    state.onClose?.();
    if (last) this.ring.dispose();
  }

  #check(side: PipeSide): void {
    const waiters = this.#sides[side].waiters;
    if (waiters.length === 0) return;
    const peerGone = this.isClosed(other(side));
    for (const waiter of waiters.drain()) {
      if (waiter.ready()) waiter.resolve();
      else if (peerGone) waiter.reject(peerClosed(side));
      else waiters.push(waiter);
    }
  }

  /** Sleeps on the ring word `side` waits for while `side` has waiters in this thread. */
  async #watch(side: PipeSide): Promise<void> {
    const state = this.#sides[side];
    if (state.watching) return;
    state.watching = true;
    holdThread();
    try {
      const header = this.ring.header;
      const word = WATCHED_WORD[side];
      while (state.waiters.length > 0 && !state.gone) {
        // Flag first, then read the word: the other side either sees the flag and notifies, or
        // made its progress before our read, which the check below then finds.
        Atomics.store(header, SLEEPING_WORD[side], 1);
        Atomics.store(header, WOKEN_WORD[side], 0);
        const seen = Atomics.load(header, word);
        this.#check(side);
        if (state.waiters.length === 0) break;
        // The timeout lets the loop notice waiters that gave up (timeout, abort) meanwhile.
        const result = waitAsync(header, word, seen, RECHECK_MS);
        if (result.async) {
          const slept = performance.now();
          await result.value;
          state.spinner?.slept((performance.now() - slept) * 1000);
        }
      }
    } finally {
      // A side gone from here may be reused by a new owner, or the ring freed.
      if (!state.gone) Atomics.store(this.ring.header, SLEEPING_WORD[side], 0);
      releaseThread();
      state.watching = false;
    }
  }
}

function newSide(): SideState {
  return {
    waiters: new Deque(),
    onClose: undefined,
    watching: false,
    spinner: undefined,
    wakeDue: undefined,
    gone: false,
  };
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
