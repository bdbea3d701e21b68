/**
 * The shared memory of one channel pair: a control block and two rings, ring `s` carrying the
 * messages side `s` sends. Words written by the producer, by the consumer and by both sit on
 * separate cache lines so the two threads do not fight over one line per message.
 */

import type { ChannelLimits } from '../../channel/endpoint.js';
import { IpcError } from '../../errors.js';

/** Int32 index of `closed` for each side: 1 once that side closed or its thread died. */
export const CLOSED = 0;
/** Int32 index of the ownership generation of each side: guards against importing a token twice. */
export const GENERATION = 2;
/**
 * Two int32 words of random identity for the pair. A SharedArrayBuffer that went to another
 * thread and came back is a new object, so object identity cannot tell two pairs apart.
 */
export const PAIR_ID = 4;

/** Int32 offsets inside a ring's control area. */
export const P_MSGS = 0; // producer: messages ever written (wrapping int32)
export const P_BYTES = 1; // producer: data bytes ever written (wrapping int32)
export const P_HEAD = 2; // producer: write position, stored only when the side moves
export const HWM = 3; // producer: most messages ever queued at once
export const C_MSGS = 16; // consumer: messages ever taken
export const C_BYTES = 17; // consumer: data bytes ever taken
export const C_TAIL = 18; // consumer: read position, stored only when the side moves
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
/** Byte offset of the first ring's data: the control block and both ring control areas. */
const DATA_START = (CONTROL_INTS + 2 * RING_CONTROL_INTS) * 4;

/** Record header: length (or WRAP), type, handle count, padding to keep data 8-byte aligned. */
export const RECORD_HEADER = 16;
/** A length word telling the reader that the producer continued at the ring's start. */
export const WRAP = -1;
/** Largest ring: keeps every byte offset a safe int32 index. */
const MAX_RING_BYTES = 2 ** 30;

export function ringControl(ring: number): number {
  return CONTROL_INTS + ring * RING_CONTROL_INTS;
}

export function recordSize(bytes: number): number {
  return RECORD_HEADER + ((bytes + 7) & ~7);
}

/**
 * A ring large enough that any message the limits admit always fits contiguously: queued
 * records take at most `capacity * (header + 7) + capacityBytes`, and the end left unused when
 * the producer wraps is shorter than one largest record.
 */
export function ringBytes(limits: ChannelLimits): number {
  const queued = limits.capacity * (RECORD_HEADER + 7) + limits.capacityBytes;
  const size = (queued + recordSize(limits.maxMessageBytes) + 7) & ~7;
  return size;
}

/** Throws when the limits need a ring larger than shared memory here can hold. */
export function checkRingLimits(limits: ChannelLimits): void {
  const queued = limits.capacity * (RECORD_HEADER + 7) + limits.capacityBytes;
  if (queued + recordSize(limits.maxMessageBytes) > MAX_RING_BYTES) {
    throw new IpcError(
      'HANDLE_NOT_MOVABLE',
      `a channel with capacity ${limits.capacity} and capacityBytes ${limits.capacityBytes} needs a shared ring over ${MAX_RING_BYTES} bytes; it cannot leave its thread`,
    );
  }
}

export function ringData(ring: number, size: number): number {
  return DATA_START + ring * size;
}

export function pairBytes(limits: ChannelLimits): number {
  return DATA_START + 2 * ringBytes(limits);
}
