/** Test helpers that start the workers of scenarios.ts. */
import { Worker } from 'node:worker_threads';
import type { EndpointToken } from '../../../src/index.js';
import { type Arena, KIND_RING } from '../../../src/shm/arena.js';

/** Starts a scenario in a new worker, handing it `token` (moved there) and other data. */
export function startWorker(
  scenario: string,
  token?: EndpointToken,
  more: Record<string, unknown> = {},
): Worker {
  const worker = new Worker(new URL('./scenarios.js', import.meta.url), {
    workerData: { scenario, token, ...more },
    transferList: token?.transfer ?? [],
  });
  exits.set(worker, new Promise((resolve) => worker.once('exit', resolve)));
  return worker;
}

const exits = new WeakMap<Worker, Promise<number>>();

/** The worker's exit code, also when it exited before the caller asked. */
export function exitCode(worker: Worker): Promise<number> {
  return exits.get(worker) as Promise<number>;
}

/**
 * The next message the worker posts. Unlike events.once, not rejected by the worker's 'error'
 * event, which a worker that throws on purpose may deliver before its last message.
 */
export function nextMessage<T>(worker: Worker): Promise<T> {
  return new Promise((resolve) => worker.once('message', resolve));
}

/** Fills a message so the receiver can check every byte: byte i of message n is (n + i) & 255. */
export function pattern(n: number, size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i++) out[i] = (n + i) & 255;
  return out;
}

/** A worker that returns every token it gets, so a token crosses into a thread and back. */
export class Relay {
  readonly #worker = startWorker('relay');

  constructor() {
    this.#worker.unref();
  }

  async bounce(token: EndpointToken): Promise<EndpointToken> {
    // Held only while a token is away, so the relay never keeps the test process alive.
    this.#worker.ref();
    this.#worker.postMessage(token, token.transfer);
    const back = await nextMessage<EndpointToken>(this.#worker);
    this.#worker.unref();
    return back;
  }

  stop(): Promise<number> {
    return this.#worker.terminate();
  }
}

/** Takes every block `arena` has left, so the next allocation fails; returns them. */
export function fillArena(arena: Arena): number[] {
  const blocks: number[] = [];
  for (let k = 28; k >= 6; k--) {
    for (
      let b = arena.alloc(2 ** k - 16, KIND_RING);
      b !== 0;
      b = arena.alloc(2 ** k - 16, KIND_RING)
    ) {
      blocks.push(b);
    }
  }
  return blocks;
}

export function releaseBlocks(arena: Arena, blocks: number[]): void {
  for (const b of blocks) arena.free(b);
}
