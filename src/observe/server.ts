import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SystemSpec } from '../runtime/spec.js';
import type { ServiceStatus, SystemEvent } from '../runtime/supervisor.js';
import { renderSystemMetrics } from './metrics.js';

/** What the page watches: a running `System` fits. */
export interface ObservedSystem {
  readonly spec: SystemSpec;
  status(): ServiceStatus[];
}

export interface ObserveOptions {
  /** Default 0: any free port. */
  readonly port?: number;
  /** Default 127.0.0.1: only this machine can see the page. */
  readonly host?: string;
  /** How often the page gets a snapshot. Default 1000 ms. */
  readonly intervalMs?: number;
}

/** The page's files, shipped in the package as they are (no build step): dist/src/observe → src/observe/page. */
const PAGE = new URL('../../../src/observe/page/', import.meta.url);
const ASSETS: Readonly<Record<string, string>> = {
  '/': 'index.html',
  '/page.js': 'page.js',
  '/page.css': 'page.css',
};
const TYPES: Readonly<Record<string, string>> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
};
interface Recorded {
  readonly seq: number;
  readonly t: number;
  readonly event: SystemEvent;
}

/** Events the page can show when a channel or service is clicked: the newest this many. */
const RECENT_EVENTS = 200;

/**
 * The live page of a running system and its `/metrics`, over HTTP. The data (`/events`,
 * `/metrics`) needs the token the printed URL carries (`?token=` or `Authorization: Bearer`),
 * since anyone on the host can reach a local port. The page gets a snapshot per interval over server-sent events.
 */
export class ObserveServer {
  /** The page's address, token included. */
  readonly url: string;
  readonly #server: Server;
  readonly #system: ObservedSystem;
  readonly #token: string;
  readonly #streams = new Set<ServerResponse>();
  readonly #exits = new Map<string, number>();
  readonly #events: Recorded[] = [];
  /** Events not yet sent to the open pages (a page that just opened may have them already). */
  #unsent: Recorded[] = [];
  #seq = 0;
  readonly #timer: NodeJS.Timeout;

  private constructor(server: Server, system: ObservedSystem, token: string, intervalMs: number) {
    this.#server = server;
    this.#system = system;
    this.#token = token;
    const { address, port } = server.address() as AddressInfo;
    const host = address.includes(':') ? `[${address}]` : address;
    this.url = `http://${host}:${port}/?token=${token}`;
    this.#timer = setInterval(() => this.#tick(), intervalMs);
    this.#timer.unref();
  }

  static async start(system: ObservedSystem, options: ObserveOptions = {}): Promise<ObserveServer> {
    const token = randomBytes(16).toString('hex');
    // Loaded here, not with the package: a program that never serves the page never loads HTTP.
    const { createServer } = await import('node:http');
    const server = createServer();
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve).once('error', reject);
    });
    const observer = new ObserveServer(server, system, token, options.intervalMs ?? 1000);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      observer.#handle(req, res).catch(() => res.destroy());
    });
    return observer;
  }

  /** Records a supervisor event for the page (and counts exits for `/metrics`). */
  event(event: SystemEvent): void {
    if (event.kind === 'exit')
      this.#exits.set(event.service, (this.#exits.get(event.service) ?? 0) + 1);
    const entry = { seq: ++this.#seq, t: Date.now(), event };
    this.#events.push(entry);
    if (this.#events.length > RECENT_EVENTS) this.#events.shift();
    this.#unsent.push(entry);
  }

  /** The `/metrics` text. */
  metrics(): string {
    return renderSystemMetrics(this.#system.status(), this.#exits);
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    for (const res of this.#streams) res.end();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' }).end();
      return;
    }
    // The page's files are the package's, the same for everyone; only the data needs the token.
    const file = ASSETS[url.pathname];
    if (file !== undefined) {
      const body = await readFile(new URL(file, PAGE));
      res
        .writeHead(200, {
          'content-type': TYPES[file.split('.').pop()!]!,
          'cache-control': 'no-store',
          'content-security-policy': "default-src 'self'; img-src 'self' data:",
        })
        .end(body);
      return;
    }
    if (!this.#authorized(req, url)) {
      res
        .writeHead(401, { 'content-type': 'text/plain' })
        .end('a token is needed: use the URL ftl-ipc run printed\n');
      return;
    }
    if (url.pathname === '/metrics') {
      res
        .writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' })
        .end(this.metrics());
      return;
    }
    if (url.pathname === '/events') {
      res.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-store',
        connection: 'keep-alive',
      });
      this.#streams.add(res);
      res.on('close', () => this.#streams.delete(res));
      res.write(`event: hello\ndata: ${JSON.stringify(this.#hello())}\n\n`);
      res.write(`data: ${JSON.stringify(this.#snapshot([]))}\n\n`);
      return;
    }
    res.writeHead(404).end();
  }

  #authorized(req: IncomingMessage, url: URL): boolean {
    const given =
      url.searchParams.get('token') ?? req.headers.authorization?.replace(/^Bearer /, '') ?? '';
    const a = Buffer.from(given);
    const b = Buffer.from(this.#token);
    return a.length === b.length && timingSafeEqual(a, b);
  }

  /** The graph, sent once: services and the channels between them. */
  #hello() {
    const { spec } = this.#system;
    return {
      name: spec.name,
      services: spec.services.map((s) => ({
        name: s.name,
        isolation: s.isolation,
        provides: s.provides,
      })),
      links: spec.services.flatMap((s) =>
        s.depends.map((d) => ({
          client: s.name,
          server: d.service,
          name: d.name,
          protocol: d.protocol,
        })),
      ),
      events: this.#events,
    };
  }

  #snapshot(events: readonly Recorded[]) {
    return {
      t: Date.now(),
      services: this.#system.status().map((s) => ({
        name: s.name,
        state: s.state,
        id: s.id ?? null,
        restarts: s.restarts,
        exits: this.#exits.get(s.name) ?? 0,
        channels: s.channels,
      })),
      events,
    };
  }

  #tick(): void {
    if (this.#streams.size === 0) {
      this.#unsent = [];
      return;
    }
    const text = `data: ${JSON.stringify(this.#snapshot(this.#unsent))}\n\n`;
    this.#unsent = [];
    for (const res of this.#streams) res.write(text);
  }
}
