/**
 * An HTTP/1.1 server on top of the tcpip service: it never touches a socket, only connection
 * channels. Keep-alive and pipelining work; request bodies need Content-Length (no chunked
 * uploads). Config: `port` (default 8080; 0 for any free port).
 */
import type { Channel, ServiceEnv } from 'ftl-ipc';
import { ConnectionClient, ControlClient, ListenClient } from '../tcpip/tcpip.generated.js';
import { handle, type Request, type Response } from './handler.js';

const MAX_HEAD = 16 * 1024;
const MAX_BODY = 1024 * 1024;
/** Largest `tcp_send` payload: the IDL allows 64 KiB, and the message header must fit too. */
const SEGMENT = 32 * 1024;
const HEAD_END = Buffer.from('\r\n\r\n');
const REASONS: Record<number, string> = {
  200: 'OK',
  400: 'Bad Request',
  404: 'Not Found',
  405: 'Method Not Allowed',
  413: 'Content Too Large',
  431: 'Request Header Fields Too Large',
  501: 'Not Implemented',
};

export default async function main(env: ServiceEnv<{ port?: number }>): Promise<void> {
  const port = env.config.port ?? 8080;
  let channel = env.channel('tcpip');
  while (!env.signal.aborted) {
    const control = new ControlClient(channel, { timeoutMs: 5000 });
    const listener = new ListenClient((await control.tcpListen({ port })).listen);
    env.observe('listen', listener.channel);
    if (port !== 0) console.log(`serving http://127.0.0.1:${port}/`);
    const stop = () => listener.close();
    env.signal.addEventListener('abort', stop);
    for await (const { value } of listener) void serve(value.conn).catch(() => value.conn.close());
    env.signal.removeEventListener('abort', stop);
    // The listen channel ended: shutdown, or the tcpip service restarted and we listen again.
    if (!env.signal.aborted) channel = await env.reconnect('tcpip', channel);
  }
}

/** Serves one connection's requests in order until either side closes. */
async function serve(channel: Channel): Promise<void> {
  const conn = new ConnectionClient(channel);
  let pending: Buffer = Buffer.alloc(0);
  for await (const event of conn) {
    if (event.kind === 'tcpClosed') break;
    const { data } = event.value;
    // The message's bytes are ours: a view of them, not a copy, while nothing is left over.
    pending =
      pending.byteLength === 0
        ? Buffer.from(data.buffer, data.byteOffset, data.byteLength)
        : Buffer.concat([pending, data]);
    for (;;) {
      const parsed = parse(pending);
      if (parsed === undefined) break;
      pending = pending.subarray(parsed.used);
      await send(conn, parsed.response, parsed.close);
      if (parsed.close) {
        conn.close();
        return;
      }
    }
  }
  conn.close();
}

interface Parsed {
  readonly used: number;
  readonly response: Response;
  readonly close: boolean;
}

/** One complete request from the front of `bytes`, answered; undefined while incomplete. */
function parse(bytes: Buffer): Parsed | undefined {
  const end = bytes.indexOf(HEAD_END);
  if (end < 0) return bytes.byteLength > MAX_HEAD ? refuse(bytes.byteLength, 431) : undefined;
  const [requestLine = '', ...lines] = bytes.subarray(0, end).toString('latin1').split('\r\n');
  const [method, target, version] = requestLine.split(' ');
  if (method === undefined || target === undefined || !version?.startsWith('HTTP/1.')) {
    return refuse(bytes.byteLength, 400);
  }
  const headers = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon > 0)
      headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  if (headers.has('transfer-encoding')) return refuse(bytes.byteLength, 501);
  const length = Number(headers.get('content-length') ?? 0);
  if (!Number.isSafeInteger(length) || length < 0) return refuse(bytes.byteLength, 400);
  if (length > MAX_BODY) return refuse(bytes.byteLength, 413);
  const used = end + HEAD_END.byteLength + length;
  if (bytes.byteLength < used) return undefined;
  const connection = headers.get('connection')?.toLowerCase();
  const request: Request = {
    method,
    path: target.split('?')[0] ?? target,
    headers,
    body: bytes.subarray(end + HEAD_END.byteLength, used),
  };
  const response = handle(request);
  return {
    used,
    response: method === 'HEAD' ? { ...response, body: new Uint8Array() } : response,
    close: connection === 'close' || (version === 'HTTP/1.0' && connection !== 'keep-alive'),
  };
}

function refuse(used: number, status: number): Parsed {
  const body = Buffer.from(`${REASONS[status]}\n`);
  return { used, response: { status, type: 'text/plain; charset=utf-8', body }, close: true };
}

async function send(conn: ConnectionClient, response: Response, close: boolean): Promise<void> {
  const head =
    `HTTP/1.1 ${response.status} ${REASONS[response.status]}\r\n` +
    `Content-Type: ${response.type}\r\nContent-Length: ${response.body.byteLength}\r\n` +
    `${response.allow === undefined ? '' : `Allow: ${response.allow}\r\n`}` +
    `${close ? 'Connection: close\r\n' : ''}\r\n`;
  // The head is latin1 (one byte a character). Small responses go out as one segment, written
  // into one buffer: one message, one socket write.
  const whole = head.length + response.body.byteLength <= SEGMENT;
  const bytes = Buffer.allocUnsafe(whole ? head.length + response.body.byteLength : head.length);
  bytes.write(head, 0, 'latin1');
  if (whole) bytes.set(response.body, head.length);
  await conn.tcpSendWait({ data: bytes });
  if (whole) return;
  for (let at = 0; at < response.body.byteLength; at += SEGMENT) {
    await conn.tcpSendWait({ data: response.body.subarray(at, at + SEGMENT) });
  }
}
