import { readFileSync } from 'node:fs';

/** What every benchmark reports of its runs: the median, and the range around it. */

export function median(xs: readonly number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** `min to max`, each shown with `show`. */
export function range(xs: readonly number[], show: (x: number) => string = String): string {
  return `${show(Math.min(...xs))} to ${show(Math.max(...xs))}`;
}

/**
 * CPU time this thread has run, in nanoseconds (Linux's /proc/thread-self/schedstat): unlike the
 * wall clock it leaves out the time spent waiting or descheduled by other load, and unlike
 * `process.cpuUsage()` it is per thread, so a worker and the main thread count apart. NaN
 * elsewhere.
 */
export function threadCpuNs(): number {
  try {
    return Number(readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ')[0]);
  } catch {
    return Number.NaN;
  }
}
