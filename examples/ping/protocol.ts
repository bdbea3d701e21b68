/**
 * The ping protocol by hand: one call, `ping { value: int32 }` answered with the same shape.
 * The IDL in `ping.json` generates the typed version of exactly this.
 */
import type { Channel } from 'ftl-ipc';

export const PING = 1;
export const PONG = 2;

export function int32(value: number): Uint8Array {
  const data = new Uint8Array(4);
  new DataView(data.buffer).setInt32(0, value, true);
  return data;
}

export function readInt32(data: Uint8Array): number {
  return new DataView(data.buffer, data.byteOffset, data.byteLength).getInt32(0, true);
}

/** One round trip: sends `ping { value }`, waits for the reply's value. */
export async function ping(channel: Channel, value: number): Promise<number> {
  await channel.sendWait({ type: PING, data: int32(value) });
  return readInt32((await channel.recv()).data);
}
