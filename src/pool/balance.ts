/**
 * What the pool and the runtime's spread of a service's instances (src/runtime/spread.ts) share:
 * which worker takes the next call, and how a worker's end is told.
 */

/** Of the ready `lanes`, the one with the most free window of `window` calls; none when all are full. */
export function mostFree<T extends { readonly inFlight: number }>(
  lanes: Iterable<T>,
  window: number,
  ready: (lane: T) => boolean,
): T | undefined {
  let best: T | undefined;
  let most = 0;
  for (const lane of lanes) {
    if (!ready(lane)) continue;
    const free = window - lane.inFlight;
    if (free > most) {
      most = free;
      best = lane;
    }
  }
  return best;
}

export interface Exit {
  readonly code: number | null;
  readonly signal?: NodeJS.Signals | string | null;
}

export function describeExit(exit: Exit): string {
  if (exit.signal) return `was killed by ${exit.signal}`;
  return `exited with code ${exit.code}`;
}
