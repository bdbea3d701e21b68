/**
 * Test helpers around real workers: a relay worker that hands every token straight back, so a
 * token crosses two thread boundaries (structured clone and port transfer both ways).
 */
import { Worker } from 'node:worker_threads';
import type { EndpointToken } from '../../../src/index.js';

export function startWorker(
  scenario: string,
  workerData: Record<string, unknown> = {},
  transferList: EndpointToken['port'][] = [],
): Worker {
  return new Worker(new URL('./scenarios.js', import.meta.url), {
    workerData: { scenario, ...workerData },
    transferList,
  });
}

/** A worker that returns every message it gets, ports included. */
export class Relay {
  readonly #worker = startWorker('relay');

  constructor() {
    this.#worker.unref();
  }

  bounce(token: EndpointToken): Promise<EndpointToken> {
    // Held only while a token is away, so the relay never keeps the test process alive.
    this.#worker.ref();
    return new Promise((resolve) => {
      this.#worker.once('message', (back: EndpointToken) => {
        this.#worker.unref();
        resolve(back);
      });
      this.#worker.postMessage(token, [token.port]);
    });
  }

  stop(): Promise<number> {
    return this.#worker.terminate();
  }
}
