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
