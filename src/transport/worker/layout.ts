/**
 * The shared memory of one channel pair, in blocks of the thread arena (src/shm/arena.ts): a
 * slot with the control words of the pair and of its two directions, and per direction a chain
 * of rings, ring `s` carrying what side `s` sends. A ring is allocated on the first send and
 * replaced by a larger one when a message finds no room, so memory follows use; the consumer
 * frees a ring once it has read past it. Words written by the producer, by the consumer and by
 * both sit on separate cache lines so the two threads do not fight over one line per message.
 *
 * Offsets below are int32 indexes relative to the slot's first word, or bytes where named so.
 */

import type { ChannelLimits } from '../../channel/endpoint.js';
import { IpcError } from '../../errors.js';
import { BLOCK_HEADER, MAX_BLOCK } from '../../shm/arena.js';

/** `closed` for each side: 1 once that side closed or its thread died. */
export const CLOSED = 0;
/** The ownership generation of each side: guards against importing a token twice. */
export const GENERATION = 2;
/** The arena entry of the thread that owns each side; 0 while it travels. */
export const OWNER = 4;
/** Bit `s` set once side `s` let go of the slot: the second one frees it. */
export const RELEASED = 6;
/** Random identity of this use of the slot: a stale token names a slot reused since. */
export const PAIR_ID = 7;

/** Int32 offsets inside a direction's control area. */
export const P_MSGS = 0; // producer: messages ever written (wrapping int32)
export const P_BYTES = 1; // producer: data bytes ever written (wrapping int32)
export const P_HEAD = 2; // producer: write position, stored only when the side moves
export const HWM = 3; // producer: most messages ever queued at once
export const P_RING = 4; // producer: its ring, stored only when the side moves
export const P_RING_START = 5; // producer: messages written before that ring, likewise
export const C_MSGS = 16; // consumer: messages ever taken
export const C_BYTES = 17; // consumer: data bytes ever taken
export const C_TAIL = 18; // consumer: read position in its ring, published with its progress
export const C_RING = 19; // consumer: the ring it reads; the producer sets the first one
export const C_TAKEN = 20; // consumer: messages read from the ring, held ones included
/** Wake words: 0 awake, 1 sleeping, 2 notified. Only the sleeper stores 0 or 1. */
export const READER_WAKE = 32;
export const WRITER_WAKE = 33;
/**
 * When the notifier woke each sleeper (milliseconds since the epoch, as a float64 over two
 * int32 words, 8-byte aligned): tells the sleeper whether spinning would have been enough.
 */
export const READER_WOKEN_AT = 36;
export const WRITER_WOKEN_AT = 38;

const CONTROL_INTS = 16;
const RING_CONTROL_INTS = 48;
export const SLOT_BYTES = (CONTROL_INTS + 2 * RING_CONTROL_INTS) * 4;

export function ringControl(ring: number): number {
  return CONTROL_INTS + ring * RING_CONTROL_INTS;
}

/** A ring block's own header (bytes): the next ring, once the producer moved on. */
export const R_NEXT = 0;
export const RING_HEADER = 16;
/** The smallest ring block: its data holds seven 16-byte messages. */
export const MIN_RING_BLOCK = 256;
/**
 * A ring larger than this is swapped for a small one when a send finds its queue empty, after
 * this many writes into it none of which needed a sixteenth of it: a burst is not followed by
 * a shrink at every lull, which would grow the ring again through every size.
 */
export const SHRINK_ABOVE = 64 * 1024;
export const SHRINK_AFTER = 1024;

/** Record header: length (or WRAP, MOVED), type, handle count, the handles' block. */
export const RECORD_HEADER = 16;
/** A length word telling the reader that the producer continued at the ring's start. */
export const WRAP = -1;
/** A length word telling the reader that the producer continued in the ring's next ring. */
export const MOVED = -2;

/** A channel handle in a message: int32 words, then float64 counters from byte 40. */
export const HANDLE_BYTES = 96;

export function recordSize(bytes: number): number {
  return RECORD_HEADER + ((bytes + 7) & ~7);
}

/**
 * The data size of the largest ring a direction needs: one where anything the limits admit
 * always fits contiguously, as queued records take at most `capacity * (header + 7) +
 * capacityBytes` and the end left unused when the producer wraps is shorter than one largest
 * record. Rings start far smaller and grow towards this only when messages find no room.
 */
export function maxRingBytes(limits: ChannelLimits): number {
  const queued = limits.capacity * (RECORD_HEADER + 7) + limits.capacityBytes;
  return Math.ceil((queued + recordSize(limits.maxMessageBytes)) / 8) * 8;
}

/** Throws when the limits need a ring larger than one arena block. */
export function checkRingLimits(limits: ChannelLimits): void {
  if (maxRingBytes(limits) + RING_HEADER + BLOCK_HEADER > MAX_BLOCK) {
    throw new IpcError(
      'HANDLE_NOT_MOVABLE',
      `a channel with capacity ${limits.capacity} and capacityBytes ${limits.capacityBytes} needs a shared ring over ${MAX_BLOCK} bytes; it cannot leave its thread`,
    );
  }
}
