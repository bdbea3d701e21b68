import diagnosticsChannel from 'node:diagnostics_channel';
import { availableParallelism } from 'node:os';
import type { ResourceLimits } from 'node:worker_threads';
import {
  Channel,
  type ChannelOptions,
  type SendOptions,
  type WaitOptions,
} from '../channel/index.js';
import { checkWaitOptions } from '../channel/wait.js';
import { IpcError, isIpcError } from '../errors.js';
import { Backoff, type BackoffPolicy } from '../runtime/backoff.js';
import { DEFAULT_RESTART } from '../runtime/spec.js';
import { parentChannels, type SpawnOptions, spawnProcess } from '../transport/socket/spawn.js';
import { type SpawnWorkerOptions, spawnWorker } from '../transport/worker/spawn.js';
import type { CallRouter, ProtocolClient } from '../wire/client.js';
import type { CallDescriptor, MessageDescriptor, Received } from '../wire/message.js';
import type { CallOptions, ClientOptions, RpcClient } from '../wire/rpc.js';
import { describeExit, type Exit, mostFree } from './balance.js';

/**
 * Published for each worker's life events, with `{ pool, worker, event, ... }`: `event` is
 * 'start' (with `id`), 'exit' (with `exit` and `expected`: false for a crash), 'restart' (with
 * `delayMs`), 'give-up', 'terminate' (with `reason`) or 'idle'.
 */
export const poolChannel = diagnosticsChannel.channel('ftl-ipc:pool');

/** The name of the channel a pool worker takes: `poolChannel()` in the worker gets it. */
const CHANNEL_NAME = 'ftl-ipc:pool';

/** In a pool worker: its channel to the pool, to serve the protocol on. */
export async function workerChannel(): Promise<Channel> {
  const channels = await parentChannels([CHANNEL_NAME]);
  return channels[CHANNEL_NAME];
}

/** The default bound of the pool queue: calls waiting for a free window, beyond all workers'. */
export const DEFAULT_MAX_QUEUE = 1024;
/** The default of each worker's channel `capacity`: its call window is half of it. */
export const DEFAULT_WORKER_CAPACITY = 64;
export const DEFAULT_IDLE_TIMEOUT_MS = 10_000;
/** How long `close()` waits for a worker to exit once its channel is closed, then terminates it. */
const EXIT_GRACE_MS = 5000;
/** How long a worker whose channel closed has to exit before it is taken to run on. */
const GONE_GRACE_MS = 1000;

const delay = (ms: number) =>
  new Promise<undefined>((resolve) => setTimeout(resolve, ms, undefined).unref());

type EventOf<C> = C extends ProtocolClient<infer E> ? E : never;

/** A generated client class: `WorkClient` for protocol `work`. */
export type ClientClass<C extends ProtocolClient<Received>> = new (
  target: Channel | CallRouter<EventOf<C>>,
  options?: ClientOptions,
) => C;

export interface PoolOptions<C extends ProtocolClient<Received>> {
  /** The generated client of the protocol the workers serve; `pool.client` is one on the pool. */
  readonly client: ClientClass<C>;
  /** 'thread' (default, `spawnWorker`) or 'process' (`spawnProcess`). */
  readonly isolation?: 'thread' | 'process';
  /** A fixed number of workers. Default: `availableParallelism()`, unless `min`/`max` are given. */
  readonly size?: number;
  /** With `max`: workers kept even when idle (default 1)... */
  readonly min?: number;
  /** ...and the most, started when calls find every window full. */
  readonly max?: number;
  /** A worker beyond `min` with no call for this long is closed. Default 10000. */
  readonly idleTimeoutMs?: number;
  /** Calls in flight per worker. Default: half the worker channel's capacity (its call window). */
  readonly concurrency?: number;
  /** Each worker's channel limits (`Channel.pair`). Default capacity 64. */
  readonly channel?: ChannelOptions;
  /** Calls waiting for a free window; one more fails at once with BACKPRESSURE. Default 1024; 0: none wait. */
  readonly maxQueue?: number;
  /** The timeout of calls that give none. Default: none. */
  readonly timeoutMs?: number;
  /**
   * Terminate (and replace) a worker still running a call this long after the call timed out or
   * was aborted: its handler ignored its signal. Default: never.
   */
  readonly stuckMs?: number;
  /** Replacing crashed workers, per slot. Default: 5 in a row, from 100 ms doubling to 5 s. */
  readonly restart?: BackoffPolicy;
  /** Threads only: the worker's heap and stack limits, as `new Worker` takes them. */
  readonly resourceLimits?: ResourceLimits;
  /** Passed to `spawnWorker` (threads): argv, env, execArgv, ... */
  readonly worker?: Omit<SpawnWorkerOptions, 'channels' | 'resourceLimits'>;
  /** Passed to `spawnProcess` (processes): args, env, execArgv, stdio, ... */
  readonly process?: Omit<SpawnOptions, 'channels'>;
}

/** `stopped`: closed when idle (or by `close()`); a later shortage starts it again. */
export type WorkerState = 'starting' | 'ready' | 'closing' | 'stopped' | 'backoff' | 'failed';

/** One worker slot's counters; a replaced worker keeps its slot and counts on. */
export interface PoolWorkerStats {
  /** The slot: 0, 1, ... */
  readonly worker: number;
  readonly state: WorkerState;
  /** `thread 12` or `pid 3456` while running. */
  readonly id: string | undefined;
  readonly inFlight: number;
  readonly completed: number;
  readonly failed: number;
  readonly restarts: number;
}

export interface PoolStats {
  readonly queued: number;
  readonly workers: readonly PoolWorkerStats[];
}

/** A thread or a process serving the protocol, with its client. */
interface Running {
  readonly id: string;
  readonly client: RpcClient<Received>;
  readonly exited: Promise<Exit>;
  readonly terminate: () => void;
  readonly startedAt: number;
  /** Set when the pool ends it (closing, idle, stuck): its calls fail with this instead. */
  ending: string | undefined;
  exit: Exit | undefined;
  /** A `recv()` of the pool waits on this worker's pushes, or one it gave is held. */
  recving: boolean;
}

class Slot {
  readonly index: number;
  state: WorkerState = 'starting';
  running: Running | undefined;
  inFlight = 0;
  completed = 0;
  failed = 0;
  restarts = 0;
  readonly retry: Backoff;
  timer: NodeJS.Timeout | undefined;

  constructor(index: number, retry: Backoff) {
    this.index = index;
    this.retry = retry;
  }
}

/** A call waiting in the pool queue for a free window. */
interface Waiting {
  readonly d: CallDescriptor<unknown, unknown>;
  readonly value: unknown;
  readonly signal: AbortSignal | undefined;
  readonly deadline: number | undefined;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
  timer: NodeJS.Timeout | undefined;
  onAbort: (() => void) | undefined;
  done: boolean;
}

function positiveInt(caller: string, name: string, value: number | undefined, zero = false) {
  if (value === undefined) return;
  if (!(Number.isInteger(value) && (value > 0 || (zero && value === 0))))
    throw new IpcError(
      'INVALID_ARGUMENT',
      `${caller}: ${name} must be a ${zero ? 'non-negative' : 'positive'} integer, got ${String(value)}`,
    );
}

/**
 * N workers serving one generated protocol behind one typed client (`pool.client`). Calls go
 * to the worker with the most free window; when every window is full they wait in a bounded
 * queue, and past it fail at once with BACKPRESSURE. docs/pool.md has the whole story.
 */
export class Pool<C extends ProtocolClient<Received>> implements CallRouter<EventOf<C>> {
  /** The generated client, calling through the pool. */
  readonly client: C;
  readonly #module: string | URL;
  readonly #options: PoolOptions<C>;
  readonly #min: number;
  readonly #max: number;
  readonly #concurrency: number;
  readonly #maxQueue: number;
  readonly #slots: Slot[] = [];
  #queue: (Waiting | undefined)[] = [];
  #queueHead = 0;
  #queued = 0;
  #closing: IpcError | undefined;
  /** Set when every slot gave up restarting: calls fail with it. */
  #gaveUp: IpcError | undefined;
  #destroyed = false;
  readonly #drained: (() => void)[] = [];
  readonly #pushes: Received[] = [];
  readonly #pushWaiters: { resolve: (m: Received) => void; reject: (e: unknown) => void }[] = [];

  constructor(module: string | URL, options: PoolOptions<C>) {
    const caller = 'createPool';
    positiveInt(caller, 'size', options.size);
    positiveInt(caller, 'min', options.min, true);
    positiveInt(caller, 'max', options.max);
    positiveInt(caller, 'concurrency', options.concurrency);
    positiveInt(caller, 'maxQueue', options.maxQueue, true);
    positiveInt(caller, 'idleTimeoutMs', options.idleTimeoutMs);
    positiveInt(caller, 'stuckMs', options.stuckMs);
    if (options.size !== undefined && (options.min !== undefined || options.max !== undefined))
      throw new IpcError('INVALID_ARGUMENT', `${caller}: give size, or min and max, not both`);
    if (options.isolation === 'process' && options.resourceLimits !== undefined)
      throw new IpcError(
        'INVALID_ARGUMENT',
        `${caller}: resourceLimits apply to threads; a process takes execArgv (--max-old-space-size)`,
      );
    const fixed = options.size ?? (options.max === undefined ? availableParallelism() : undefined);
    this.#max = fixed ?? options.max!;
    this.#min = fixed ?? options.min ?? 1;
    if (this.#min > this.#max)
      throw new IpcError(
        'INVALID_ARGUMENT',
        `${caller}: min (${this.#min}) is more than max (${this.#max})`,
      );
    const capacity = options.channel?.capacity ?? DEFAULT_WORKER_CAPACITY;
    this.#concurrency = options.concurrency ?? Math.max(1, capacity >> 1);
    this.#maxQueue = options.maxQueue ?? DEFAULT_MAX_QUEUE;
    this.#module = module;
    this.#options = options;
    this.client = new options.client(
      this,
      options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs },
    );
  }

  /** Starts `min` workers; rejects (and stops them) when one cannot start. */
  async start(): Promise<void> {
    const starts: Promise<void>[] = [];
    for (let i = 0; i < this.#min; i++) starts.push(this.#startSlot(this.#addSlot()));
    const results = await Promise.allSettled(starts);
    const failed = results.find((r) => r.status === 'rejected');
    if (failed !== undefined) {
      await this.destroy();
      throw failed.reason;
    }
  }

  #addSlot(): Slot {
    const slot = new Slot(
      this.#slots.length,
      new Backoff(this.#options.restart ?? DEFAULT_RESTART),
    );
    this.#slots.push(slot);
    return slot;
  }

  /** Counters per worker slot, and the queue's length. */
  stats(): PoolStats {
    return {
      queued: this.#queued,
      workers: this.#slots.map((s) => ({
        worker: s.index,
        state: s.state,
        id: s.running?.id,
        inFlight: s.inFlight,
        completed: s.completed,
        failed: s.failed,
        restarts: s.restarts,
      })),
    };
  }

  async #spawn(slot: Slot): Promise<Running> {
    const [mine, theirs] = Channel.pair(this.#options.channel);
    const channels = { [CHANNEL_NAME]: theirs };
    try {
      if (this.#options.isolation === 'process') {
        const { child, exited } = await spawnProcess(this.#module, {
          ...this.#options.process,
          channels,
        });
        return this.#running(slot, mine, `pid ${child.pid}`, exited, () => child.kill('SIGKILL'));
      }
      const { worker, exited } = await spawnWorker(this.#module, {
        ...this.#options.worker,
        ...(this.#options.resourceLimits !== undefined && {
          resourceLimits: this.#options.resourceLimits,
        }),
        channels,
      });
      // An uncaught error in the worker is its exit, reported with its code; not this thread's.
      worker.on('error', () => {});
      return this.#running(slot, mine, `thread ${worker.threadId}`, exited, () => {
        void worker.terminate();
      });
    } catch (error) {
      mine.close();
      throw error;
    }
  }

  #running(
    slot: Slot,
    channel: Channel,
    id: string,
    exited: Promise<Exit>,
    terminate: () => void,
  ): Running {
    const client = new this.#options.client(channel).router as RpcClient<Received>;
    const running: Running = {
      id,
      client,
      exited,
      terminate,
      startedAt: performance.now(),
      ending: undefined,
      exit: undefined,
      recving: false,
    };
    void exited.then((exit) => {
      running.exit = exit;
      // No reply comes any more: the calls it held fail now, not at their timeouts.
      client.close();
      this.#exited(slot, running, exit);
    });
    return running;
  }

  /** Starts a worker in `slot`; on failure the slot backs off like after a crash. */
  async #startSlot(slot: Slot): Promise<void> {
    slot.state = 'starting';
    let running: Running;
    try {
      running = await this.#spawn(slot);
    } catch (error) {
      if (this.#closing === undefined) this.#retryLater(slot, 0);
      throw error;
    }
    if (this.#destroyed) {
      running.ending = 'the pool was destroyed';
      running.terminate();
      return;
    }
    slot.running = running;
    slot.state = 'ready';
    this.#publish(slot, 'start', { id: running.id });
    if (this.#pushWaiters.length > 0) this.#armPushes(slot);
    this.#dispatch();
    if (this.#queued > 0) this.#grow();
    this.#idleLater(slot);
  }

  #publish(slot: Slot, event: string, extra: object): void {
    if (poolChannel.hasSubscribers)
      poolChannel.publish({ pool: this, worker: slot.index, event, ...extra });
  }

  #exited(slot: Slot, running: Running, exit: Exit): void {
    const expected = running.ending !== undefined;
    this.#publish(slot, 'exit', { id: running.id, exit, expected });
    if (slot.running !== running) return;
    slot.running = undefined;
    clearTimeout(slot.timer);
    // Ended on purpose, or a crash with nothing left to serve: the slot stays empty. A crash
    // while `close()` drains a queue is replaced, so the queued calls still run.
    const needed = this.#closing === undefined || (!this.#destroyed && this.#queued > 0);
    if (running.ending === 'idle' || running.ending === 'the pool closed' || !needed) {
      slot.state = 'stopped';
      this.#checkDrained();
      return;
    }
    this.#retryLater(slot, performance.now() - running.startedAt);
  }

  /** A worker died or did not start: a new one after the slot's backoff, or the slot is given up. */
  #retryLater(slot: Slot, ranMs: number): void {
    const delayMs = slot.retry.next(ranMs);
    if (delayMs === undefined) {
      slot.state = 'failed';
      this.#publish(slot, 'give-up', { restarts: slot.restarts });
      if (this.#slots.every((s) => s.state === 'failed')) {
        this.#gaveUp = new IpcError(
          'CONNECTION_FAILED',
          `every pool worker failed ${slot.retry.failuresInRow - 1} times in a row; the pool gave up`,
        );
        this.#failQueue(this.#gaveUp);
      }
      return;
    }
    slot.state = 'backoff';
    slot.restarts++;
    this.#publish(slot, 'restart', { delayMs });
    slot.timer = setTimeout(() => {
      this.#startSlot(slot).catch(() => {});
    }, delayMs);
  }

  /** The ready worker with the most free window, if any has room. */
  #pick(): Slot | undefined {
    return mostFree(this.#slots, this.#concurrency, isReady);
  }

  call<Req, Rep>(d: CallDescriptor<Req, Rep>, value: Req, options: CallOptions = {}): Promise<Rep> {
    if (this.#closing !== undefined) return Promise.reject(this.#closed(d.name));
    if (this.#gaveUp !== undefined) return Promise.reject(this.#gaveUp);
    const slot = this.#pick();
    if (slot !== undefined && this.#queued === 0) return this.#run(slot, d, value, options);
    const invalid = checkWaitOptions(options);
    if (invalid !== undefined)
      return Promise.reject(
        invalid.code === 'ABORTED'
          ? new IpcError('ABORTED', `${d.name} was aborted before it was sent`, {
              cause: invalid.cause,
            })
          : new IpcError('INVALID_ARGUMENT', `${d.name}: ${invalid.message}`),
      );
    if (this.#queued >= this.#maxQueue) {
      this.#grow();
      return Promise.reject(
        new IpcError(
          'BACKPRESSURE',
          `${d.name}: all ${this.#readyCount()} pool workers have their ${this.#concurrency} calls in flight and the pool queue holds its maxQueue of ${this.#maxQueue}`,
        ),
      );
    }
    return new Promise<Rep>((resolve, reject) => {
      const { timeoutMs, signal } = options;
      const waiting: Waiting = {
        d: d as CallDescriptor<unknown, unknown>,
        value,
        signal,
        deadline: timeoutMs === undefined ? undefined : performance.now() + timeoutMs,
        resolve: resolve as (value: unknown) => void,
        reject,
        timer: undefined,
        onAbort: undefined,
        done: false,
      };
      if (timeoutMs !== undefined)
        waiting.timer = setTimeout(
          () =>
            this.#dequeued(
              waiting,
              new IpcError(
                'TIMEOUT',
                `${d.name} waited ${timeoutMs} ms in the pool queue for a free worker`,
              ),
            ),
          timeoutMs,
        );
      if (signal !== undefined) {
        waiting.onAbort = () =>
          this.#dequeued(
            waiting,
            new IpcError('ABORTED', `${d.name} was aborted in the pool queue`, {
              cause: signal.reason,
            }),
          );
        signal.addEventListener('abort', waiting.onAbort, { once: true });
      }
      this.#queue.push(waiting);
      this.#queued++;
      this.#grow();
    });
  }

  #readyCount(): number {
    let n = 0;
    for (const slot of this.#slots) if (slot.state === 'ready') n++;
    return n;
  }

  /** A call the queue holds leaves it: sent to a worker, or failed with `error`. */
  #dequeued(waiting: Waiting, error?: IpcError): void {
    if (waiting.done) return;
    waiting.done = true;
    this.#queued--;
    clearTimeout(waiting.timer);
    if (waiting.onAbort !== undefined)
      waiting.signal!.removeEventListener('abort', waiting.onAbort);
    if (error !== undefined) {
      waiting.reject(error);
      this.#checkDrained();
    }
  }

  /** Every window full and calls waiting: more workers, up to `max`, as many as the queue fills. */
  #grow(): void {
    if (this.#closing !== undefined) return;
    let starting = 0;
    for (const slot of this.#slots) if (slot.state === 'starting') starting++;
    while (starting * this.#concurrency < this.#queued) {
      const stopped = this.#slots.find((s) => s.state === 'stopped');
      if (stopped === undefined && this.#slots.length >= this.#max) return;
      this.#startSlot(stopped ?? this.#addSlot()).catch(() => {});
      starting++;
    }
  }

  /** Sends queued calls, oldest first, while some worker has a free window. */
  #dispatch(): void {
    const queue = this.#queue;
    while (this.#queued > 0 && this.#queueHead < queue.length) {
      const waiting = queue[this.#queueHead];
      if (waiting === undefined || waiting.done) {
        queue[this.#queueHead++] = undefined;
        continue;
      }
      const slot = this.#pick();
      if (slot === undefined) break;
      queue[this.#queueHead++] = undefined;
      this.#dequeued(waiting);
      let options: CallOptions | undefined;
      if (waiting.deadline !== undefined || waiting.signal !== undefined) {
        options = {
          ...(waiting.signal !== undefined && { signal: waiting.signal }),
          ...(waiting.deadline !== undefined && {
            timeoutMs: Math.max(0, waiting.deadline - performance.now()),
          }),
        };
      }
      this.#run(slot, waiting.d, waiting.value, options).then(waiting.resolve, waiting.reject);
    }
    if (this.#queueHead === queue.length) {
      this.#queue = [];
      this.#queueHead = 0;
    } else if (this.#queueHead > 1024 && this.#queueHead * 2 > queue.length) {
      this.#queue = queue.slice(this.#queueHead);
      this.#queueHead = 0;
    }
  }

  #run<Req, Rep>(
    slot: Slot,
    d: CallDescriptor<Req, Rep>,
    value: Req,
    options: CallOptions | undefined,
  ): Promise<Rep> {
    const running = slot.running!;
    slot.inFlight++;
    if (slot.inFlight === 1) clearTimeout(slot.timer);
    return running.client.call(d, value, options).then(
      (reply) => {
        slot.completed++;
        this.#settled(slot);
        return reply;
      },
      (error: unknown) => {
        slot.failed++;
        this.#settled(slot);
        if (running.exit !== undefined || running.ending !== undefined || isGone(error))
          return this.#workerGone(slot, running, d.name, error);
        if (
          this.#options.stuckMs !== undefined &&
          (isIpcError(error, 'TIMEOUT') || isIpcError(error, 'ABORTED'))
        )
          this.#watchStuck(slot, running);
        throw error;
      },
    );
  }

  #settled(slot: Slot): void {
    slot.inFlight--;
    if (this.#queued > 0) this.#dispatch();
    else if (slot.inFlight === 0) {
      this.#checkDrained();
      this.#idleLater(slot);
    }
  }

  /** The call's worker ended while it held the call: the error names the worker and its exit. */
  async #workerGone(slot: Slot, running: Running, name: string, cause: unknown): Promise<never> {
    if (running.exit === undefined && running.ending === undefined) {
      // Its channel closes as it dies, a little before its exit is seen; one that closed its
      // channel and runs on serves no more, so it is ended and replaced.
      const exit = await Promise.race([running.exited, delay(GONE_GRACE_MS)]);
      if (exit === undefined && running.ending === undefined) {
        running.ending = 'it closed its channel';
        this.#terminate(slot, running, running.ending);
      }
    }
    const exit = await running.exited;
    if (this.#destroyed)
      throw new IpcError('CLOSED', `${name}: the pool was destroyed while the call ran`, { cause });
    const why = running.ending === undefined ? '' : ` (terminated: ${running.ending})`;
    throw new IpcError(
      'PEER_CLOSED',
      `${name}: pool worker ${slot.index} (${running.id}) ${describeExit(exit)}${why} while it held the call`,
      { cause },
    );
  }

  #terminate(slot: Slot, running: Running, reason: string): void {
    this.#publish(slot, 'terminate', { id: running.id, reason });
    running.terminate();
  }

  /** After a call's end: if its handler still runs `stuckMs` later, the worker is replaced. */
  #watchStuck(slot: Slot, running: Running): void {
    const stuckMs = this.#options.stuckMs!;
    setTimeout(() => {
      if (slot.running !== running || running.ending !== undefined) return;
      // More sent than the pool still waits for: a call that ended here is still unanswered.
      if (running.client.unanswered <= slot.inFlight) return;
      running.ending = `a call ran ${stuckMs} ms past its timeout or abort`;
      this.#terminate(slot, running, running.ending);
    }, stuckMs).unref();
  }

  /** A worker beyond `min` with nothing to do is closed after `idleTimeoutMs`. */
  #idleLater(slot: Slot): void {
    if (this.#min === this.#max || slot.inFlight > 0 || slot.state !== 'ready') return;
    clearTimeout(slot.timer);
    slot.timer = setTimeout(() => {
      const running = slot.running;
      if (running === undefined || slot.inFlight > 0 || slot.state !== 'ready') return;
      if (this.#slots.filter((s) => s.state === 'ready').length <= this.#min) return;
      running.ending = 'idle';
      slot.state = 'closing';
      this.#publish(slot, 'idle', { id: running.id });
      // Its server's serve() ends when the client closes, and with it the worker.
      running.client.close();
    }, this.#options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS);
    slot.timer.unref();
  }

  #closed(name: string): IpcError {
    return new IpcError('CLOSED', `${name}: ${this.#closing!.message}`);
  }

  #failQueue(error: IpcError): void {
    const queue = this.#queue;
    for (let i = this.#queueHead; i < queue.length; i++) {
      const waiting = queue[i];
      if (waiting !== undefined) this.#dequeued(waiting, error);
    }
    this.#queue = [];
    this.#queueHead = 0;
  }

  #checkDrained(): void {
    if (this.#closing === undefined || this.#queued > 0) return;
    if (this.#slots.some((s) => s.inFlight > 0)) return;
    for (const resolve of this.#drained.splice(0)) resolve();
  }

  /**
   * No new calls (CLOSED); queued and in-flight ones finish; then every worker's channel is
   * closed, its server ends, and it exits (terminated after 5 s). Resolves when all are gone.
   */
  async close(): Promise<void> {
    this.#closing ??= new IpcError('CLOSED', 'the pool is closed');
    await new Promise<void>((resolve) => {
      this.#drained.push(resolve);
      this.#checkDrained();
    });
    await this.#endAll((running) => {
      running.ending ??= 'the pool closed';
      running.client.close();
      const late = setTimeout(() => running.terminate(), EXIT_GRACE_MS);
      void running.exited.then(() => clearTimeout(late));
    });
  }

  /** Stops at once: queued and in-flight calls fail with CLOSED and every worker is terminated. */
  async destroy(): Promise<void> {
    this.#closing ??= new IpcError('CLOSED', 'the pool was destroyed');
    this.#destroyed = true;
    this.#failQueue(new IpcError('CLOSED', 'the pool was destroyed'));
    for (const { reject } of this.#pushWaiters.splice(0)) reject(this.#closing);
    await this.#endAll((running) => {
      running.ending ??= 'the pool was destroyed';
      running.terminate();
    });
  }

  async #endAll(end: (running: Running) => void): Promise<void> {
    const exits: Promise<unknown>[] = [];
    for (const slot of this.#slots) {
      clearTimeout(slot.timer);
      const running = slot.running;
      if (running === undefined) continue;
      end(running);
      exits.push(running.exited);
    }
    await Promise.all(exits);
    for (const { reject } of this.#pushWaiters.splice(0)) reject(this.#closing);
  }

  /** A push to the server of the ready worker with the fewest calls in flight. */
  send<T>(d: MessageDescriptor<T>, value: T, options?: SendOptions): boolean {
    return this.#pushTarget(d.name).client.send(d, value, options);
  }

  sendWait<T>(d: MessageDescriptor<T>, value: T, options?: WaitOptions): Promise<void> {
    try {
      return this.#pushTarget(d.name).client.sendWait(d, value, options);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #pushTarget(name: string): Running {
    if (this.#closing !== undefined) throw this.#closed(name);
    let best: Slot | undefined;
    for (const slot of this.#slots)
      if (slot.state === 'ready' && (best === undefined || slot.inFlight < best.inFlight))
        best = slot;
    if (best === undefined)
      throw new IpcError('BACKPRESSURE', `${name}: no pool worker is running to take it`);
    return best.running!;
  }

  /** The next push from any worker's server; each worker has at most one taken and unread. */
  recv(): Promise<EventOf<C>> {
    const held = this.#pushes.shift();
    if (held !== undefined) return Promise.resolve(held as EventOf<C>);
    if (this.#closing !== undefined && this.#slots.every((s) => s.running === undefined))
      return Promise.reject(this.#closing);
    return new Promise<Received>((resolve, reject) => {
      this.#pushWaiters.push({ resolve, reject });
      for (const slot of this.#slots) this.#armPushes(slot);
    }) as Promise<EventOf<C>>;
  }

  #armPushes(slot: Slot): void {
    const running = slot.running;
    if (running === undefined || running.recving) return;
    running.recving = true;
    running.client.recv().then(
      (push) => {
        running.recving = false;
        const waiter = this.#pushWaiters.shift();
        if (waiter === undefined) this.#pushes.push(push);
        else waiter.resolve(push);
        if (this.#pushWaiters.length > 0) this.#armPushes(slot);
      },
      // The worker is gone; its replacement is armed when it starts.
      () => {
        running.recving = false;
      },
    );
  }
}

/** Hoisted: `#pick` runs for every call. */
function isReady(slot: Slot): boolean {
  return slot.state === 'ready';
}

/** The errors of a call whose channel to its worker is gone. */
function isGone(error: unknown): boolean {
  return isIpcError(error, 'PEER_CLOSED') || isIpcError(error, 'CLOSED');
}

/**
 * Starts a pool of `module` workers, each serving the protocol of `options.client` on the
 * channel `workerChannel()` gives it; resolves once `size` (or `min`) of them are up.
 */
export async function createPool<C extends ProtocolClient<Received>>(
  module: string | URL,
  options: PoolOptions<C>,
): Promise<Pool<C>> {
  const pool = new Pool<C>(module, options);
  await pool.start();
  return pool;
}
