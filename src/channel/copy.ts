/**
 * Copies message data for a receiver. A fresh ArrayBuffer per message costs ~0.5 µs once it is
 * too big to live on V8's heap (64 bytes), so mid-sized copies are cut from a shared slab, as
 * Node's Buffer pool does. A received `data` may therefore be a view into a larger buffer:
 * use `data.byteOffset` and `data.byteLength`, never `data.buffer` alone.
 */
const ON_HEAP_MAX = 64;
/** Up to this many bytes a loop copies faster than TypedArray#set, whose fixed cost dominates. */
export const SMALL_COPY = 64;
const SLAB_BYTES = 64 * 1024;
const SLAB_ITEM_MAX = 4096;
const EMPTY = new Uint8Array(0);

let slab = new Uint8Array(SLAB_BYTES);
let slabOffset = 0;

export function copyBytes(data: Uint8Array): Uint8Array {
  return copyRange(data, 0, data.byteLength);
}

/** Copies `n` bytes of `source` from `start` without a view of them first (see copyBytes). */
export function copyRange(source: Uint8Array, start: number, n: number): Uint8Array {
  if (n === 0) return EMPTY;
  if (n <= ON_HEAP_MAX || n > SLAB_ITEM_MAX) {
    // A Buffer's own slice is a view, and its species a Buffer: copy those through a view.
    return source.constructor === Uint8Array
      ? source.slice(start, start + n)
      : new Uint8Array(source.subarray(start, start + n));
  }
  if (slabOffset + n > SLAB_BYTES) {
    slab = new Uint8Array(SLAB_BYTES);
    slabOffset = 0;
  }
  const copy = slab.subarray(slabOffset, slabOffset + n);
  copy.set(start === 0 && n === source.byteLength ? source : source.subarray(start, start + n));
  // Keep every copy 8-byte aligned so readers may lay typed arrays over it.
  slabOffset = (slabOffset + n + 7) & ~7;
  return copy;
}
