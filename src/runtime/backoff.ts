/** A run that lasts this long resets the count of failures in a row. */
export const HEALTHY_RUN_MS = 10_000;

export interface BackoffPolicy {
  /** Restarts allowed in a row before giving up; a healthy run resets the count. */
  readonly limit: number;
  /** Wait before the first restart; doubled each time, capped at `maxBackoffMs`. */
  readonly backoffMs: number;
  readonly maxBackoffMs: number;
}

/** Restarts after failures: the supervisor's per service, the pool's per worker slot. */
export class Backoff {
  readonly #policy: BackoffPolicy;
  readonly #healthyRunMs: number;
  /** Failures since the last healthy run, the one just counted included. */
  failuresInRow = 0;

  constructor(policy: BackoffPolicy, healthyRunMs = HEALTHY_RUN_MS) {
    this.#policy = policy;
    this.#healthyRunMs = healthyRunMs;
  }

  /** A failure after running `ranMs`: the wait before the next start, or undefined to give up. */
  next(ranMs: number): number | undefined {
    if (ranMs >= this.#healthyRunMs) this.failuresInRow = 0;
    this.failuresInRow++;
    if (this.failuresInRow > this.#policy.limit) return undefined;
    const { backoffMs, maxBackoffMs } = this.#policy;
    return Math.min(backoffMs * 2 ** (this.failuresInRow - 1), maxBackoffMs);
  }
}
