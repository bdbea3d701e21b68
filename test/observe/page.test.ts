/**
 * The live page of `ftl-ipc run` in a real headless Chromium (Debian's, driven by playwright-core):
 * examples/http under autocannon until its accept backlog pushes back, then a killed service, both
 * read from the page's DOM; and its /metrics through promtool. `scripts/test-deps.sh` installs
 * chromium and prometheus; without them this file fails in CI and is skipped elsewhere.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import autocannon from 'autocannon';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { within } from '../channel/helpers.js';
import { root } from '../runtime/helpers.js';

const CHROMIUM = '/usr/bin/chromium';
/** This machine's network is closed: without these Chromium waits on connections it never gets. */
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

function installed(command: string, args: string[]): boolean {
  try {
    execFileSync(command, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const missing = [
  installed(CHROMIUM, ['--version']) ? undefined : 'chromium',
  installed('promtool', ['--version']) ? undefined : 'prometheus (promtool)',
].filter((m) => m !== undefined);
const MISSING = `not installed: ${missing.join(', ')} (bash scripts/test-deps.sh installs them)`;
if (missing.length > 0 && process.env.CI === 'true') throw new Error(MISSING);

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  return port;
}

/** Resolves with the first match of `pattern` in what `lines` has collected so far or gets later. */
function waitFor(child: ChildProcess, text: string[], pattern: RegExp): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const match = text.join('').match(pattern);
      if (match === null) return;
      child.stderr!.off('data', check);
      child.stdout!.off('data', check);
      resolve(match);
    };
    child.stderr!.on('data', check);
    child.stdout!.on('data', check);
    child.once('exit', () => reject(new Error(`run exited early:\n${text.join('')}`)));
    check();
  });
}

describe('the live page of ftl-ipc run', {
  skip: missing.length > 0 ? MISSING : false,
  timeout: 110_000,
}, () => {
  let dir = '';
  let child: ChildProcess;
  const text: string[] = [];
  let pageUrl = '';
  let httpPort = 0;
  let context: BrowserContext;
  let page: Page;
  const consoleErrors: string[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ftl-observe-'));
    httpPort = await freePort();
    const spec = join(dir, 'system.yaml');
    // examples/http as it is, on a free port and with an accept backlog of one connection, so
    // that a burst of connections fills it.
    await writeFile(
      spec,
      `name: http
shutdown: { graceMs: 1000 }
services:
  - name: tcpip
    module: ${root}examples/tcpip/service.ts
    isolation: thread
    provides: [tcpip]
    restart: { policy: on-failure, limit: 5, backoffMs: 100, maxBackoffMs: 2000 }
    config: { host: 127.0.0.1, backlog: 1, buffer: 32 }
  - name: http
    module: ${root}examples/http/server.ts
    isolation: process
    depends: [{ name: tcpip, protocol: tcpip }]
    restart: { policy: on-failure, limit: 5, backoffMs: 100, maxBackoffMs: 2000 }
    config: { port: ${httpPort} }
`,
    );
    child = spawn(
      process.execPath,
      [`${root}dist/src/cli/main.js`, 'run', spec, '--ui', '--no-status'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    child.stdout!.setEncoding('utf8').on('data', (t: string) => text.push(t));
    child.stderr!.setEncoding('utf8').on('data', (t: string) => text.push(t));
    pageUrl = (await within(waitFor(child, text, /live page: (\S+)/), 30_000, 'the page URL'))[1]!;
    await within(waitFor(child, text, /serving http:/), 30_000, 'the http service');
    context = await chromium.launchPersistentContext(join(dir, 'chromium'), {
      executablePath: CHROMIUM,
      headless: true,
      args: FLAGS,
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on('console', (m) => {
      if (m.type() === 'error') consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    await page.goto(pageUrl);
  });

  after(async () => {
    await context?.close();
    if (child?.exitCode === null) {
      child.kill('SIGINT');
      await once(child, 'exit');
    }
    await rm(dir, { recursive: true, force: true });
  });

  it('shows the services and channels, backpressure under load, and a restart', async (t) => {
    await page.waitForSelector('#services tr[data-service="http"][data-state="running"]', {
      timeout: 20_000,
    });
    await page.waitForSelector('#graph .node', { timeout: 20_000 });
    // Seen while the load runs, so that the page shows the rates too.
    const load = autocannon({
      url: `http://127.0.0.1:${httpPort}/`,
      connections: 100,
      duration: 4,
    });
    // The tcpip service's end of the accept backlog: sends that found it full.
    const pressed = '#channels tr.backpressure[data-channel^="tcpip/listen:"]';
    await page.waitForSelector(pressed, { timeout: 20_000 });
    assert.ok(Number(await page.getAttribute(pressed, 'data-backpressured')) > 0);
    // The rows are drawn anew each second: a locator finds the current one.
    await page.click(pressed);
    const shots = await mkdtemp(join(tmpdir(), 'ftl-observe-shots-'));
    await page.waitForSelector('#detail:not([hidden]) dt', { timeout: 10_000 });
    await page.screenshot({ path: join(shots, 'backpressure.png'), fullPage: true });
    assert.match((await page.textContent('#detail-title')) ?? '', /tcpip · listen:/);
    // The connections' data, counted in bytes too.
    await page.waitForSelector(
      '#channels tr[data-channel^="tcpip/"]:not([data-received-bytes="0"])',
      {
        timeout: 10_000,
      },
    );
    await load;

    const pid = Number(text.join('').match(/http started \(pid (\d+)\)/)![1]);
    process.kill(pid, 'SIGKILL');
    await page.waitForSelector('#events li:has-text("http exited (SIGKILL)")', { timeout: 30_000 });
    await page.waitForSelector(
      '#services tr[data-service="http"][data-state="running"]:not([data-restarts="0"])',
      { timeout: 30_000 },
    );
    await page.screenshot({ path: join(shots, 'restart.png'), fullPage: true });
    t.diagnostic(`screenshots: ${shots}/backpressure.png, ${shots}/restart.png`);
    assert.deepEqual(consoleErrors, []);
  });

  it('serves /metrics that promtool accepts, and nothing without the token', async () => {
    const metrics = new URL(pageUrl);
    metrics.pathname = '/metrics';
    // The restarted http service listens anew, a little after it is running: a fresh backlog
    // channel, counting from 0.
    const listening =
      /^ftl_ipc_channel_backpressure_total\{service="tcpip",channel="listen:\d+"\} \d+$/m;
    const deadline = Date.now() + 20_000;
    let body = '';
    for (;;) {
      const response = await fetch(metrics);
      assert.equal(response.status, 200);
      body = await response.text();
      if (listening.test(body) || Date.now() > deadline) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.match(body, listening, 'the listen channel of the restarted http service, after 20 s');
    assert.match(body, /^ftl_ipc_service_restarts_total\{service="http"\} [1-9]/m);
    assert.match(body, /^ftl_ipc_service_exits_total\{service="http"\} [1-9]/m);
    // The restarted http service's listen call, in bytes.
    assert.match(
      body,
      /^ftl_ipc_channel_received_bytes_total\{service="tcpip",channel="client:http"\} [1-9]/m,
    );
    const check = execFile('promtool', ['check', 'metrics']);
    check.stdin!.end(body);
    let out = '';
    check.stdout!.on('data', (d) => (out += d));
    check.stderr!.on('data', (d) => (out += d));
    const [code] = await within(once(check, 'exit'), 20_000, 'promtool');
    assert.equal(code, 0, out);

    metrics.search = '';
    assert.equal((await fetch(metrics)).status, 401);
    metrics.search = '?token=0123';
    assert.equal((await fetch(metrics)).status, 401);
  });
});
