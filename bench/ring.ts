/**
 * The floor of bench/natural.bench.ts: a hand-written SharedArrayBuffer ring, head and tail
 * (message counts) in the first 8 bytes, then RING_SLOTS fixed slots of u32 length + payload.
 * Its own module so that both sides import it without running the other's top level.
 */
export const RING_SLOTS = 1024;
export const ringSlot = (size: number) => (4 + size + 7) & ~7;
