// The piscina and tinypool side of bench/pool.bench.ts: the same three tasks, as they take them.
import { createHash } from 'node:crypto';

export const inc = (value: number) => value + 1;

export const sha = (data: Uint8Array) => createHash('sha256').update(data).digest();

export function spin(ms: number) {
  const end = performance.now() + ms;
  while (performance.now() < end);
}
