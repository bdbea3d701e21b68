/**
 * The application of the http example, independent of how requests arrive: the same function
 * serves behind the tcpip service and, in the benchmark, behind plain `node:http`.
 */
export interface Request {
  readonly method: string;
  readonly path: string;
  readonly headers: ReadonlyMap<string, string>;
  readonly body: Uint8Array;
}

export interface Response {
  readonly status: number;
  readonly type: string;
  readonly body: Uint8Array;
  /** For 405: the methods the path takes. */
  readonly allow?: string;
}

const PAGE = new TextEncoder().encode(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>ftl-ipc</title></head>
<body>
<h1>Hello from ftl-ipc</h1>
<p>This page came over a real TCP socket, through the tcpip service's channels, to the http
service in its own process, and back.</p>
<p>POST anything to <code>/echo</code> and it comes back.</p>
</body>
</html>
`);

const NOT_FOUND = new TextEncoder().encode('not found\n');
const TEXT = 'text/plain; charset=utf-8';
/** The methods each path takes; any other method on it is 405, not 404. */
const ROUTES: Record<string, readonly string[]> = {
  '/': ['GET', 'HEAD'],
  '/echo': ['POST', 'PUT'],
};

export function handle(request: Request): Response {
  const methods = ROUTES[request.path];
  if (methods === undefined) return { status: 404, type: TEXT, body: NOT_FOUND };
  if (!methods.includes(request.method)) {
    const allow = methods.join(', ');
    const body = new TextEncoder().encode(`${request.path} takes ${allow}\n`);
    return { status: 405, type: TEXT, body, allow };
  }
  if (request.path === '/') return { status: 200, type: 'text/html; charset=utf-8', body: PAGE };
  const type = request.headers.get('content-type') ?? 'application/octet-stream';
  return { status: 200, type, body: request.body };
}
