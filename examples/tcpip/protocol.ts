/**
 * The tcpip protocol by hand, with FTL's messages (`tcpip.yaml` is the IDL of the same shapes).
 * Control channel: `tcp_listen { port }` is answered by `tcp_listen_reply { port }` carrying the
 * listen channel, or `tcp_error { message }`. Listen channel: `tcp_accepted { remote }` carrying
 * a connection channel. Connection channel: `tcp_send { data }` from the application,
 * `tcp_received { data }` and `tcp_closed` from the service.
 */
import type { Channel } from 'ftl-ipc';

export const TCP_LISTEN = 1;
export const TCP_LISTEN_REPLY = 2;
export const TCP_ERROR = 3;
export const TCP_ACCEPTED = 10;
export const TCP_SEND = 20;
export const TCP_RECEIVED = 21;
export const TCP_CLOSED = 22;

const text = new TextEncoder();
const untext = new TextDecoder();

export function encodePort(port: number): Uint8Array {
  return Uint8Array.of(port >> 8, port & 255);
}

export function decodePort(data: Uint8Array): number {
  return ((data[0] ?? 0) << 8) | (data[1] ?? 0);
}

export function encodeText(value: string): Uint8Array {
  return text.encode(value);
}

export function decodeText(data: Uint8Array): string {
  return untext.decode(data);
}

/** Asks the tcpip service to listen on `port` (0: any free port); the listen channel and port. */
export async function tcpListen(
  control: Channel,
  port: number,
): Promise<{ listen: Channel; port: number }> {
  await control.sendWait({ type: TCP_LISTEN, data: encodePort(port) });
  const reply = await control.recv();
  const listen = reply.handles[0] as Channel | undefined;
  if (reply.type === TCP_LISTEN_REPLY && listen !== undefined) {
    return { listen, port: decodePort(reply.data) };
  }
  for (const h of reply.handles) h.close();
  throw new Error(`tcp_listen ${port} failed: ${decodeText(reply.data)}`);
}
