/** The exit status of `ftl-ipc run` and its second signal (docs/runtime.md), as a real process. */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fixture, root } from './helpers.js';

/** Killed after the tests, so a failed test leaves no process behind. */
const running = new Set<ChildProcess>();

/** `ftl-ipc run` on `file`, with its stderr collected; `output(re)` waits for a match. */
function run(file: string): {
  child: ChildProcess;
  exit: Promise<number | null>;
  output(re: RegExp): Promise<void>;
  text(): string;
} {
  const child = spawn(process.execPath, [`${root}dist/src/cli/main.js`, 'run', file], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let text = '';
  const waiters = new Set<() => void>();
  // Services' stdout lines go to run's stdout, its own reports to stderr: one text for both.
  for (const stream of [child.stdout!, child.stderr!]) {
    stream.setEncoding('utf8').on('data', (chunk: string) => {
      text += chunk;
      for (const wake of waiters) wake();
    });
  }
  const exit = once(child, 'exit').then(([code]) => code as number | null);
  const output = async (re: RegExp) => {
    const deadline = Date.now() + 20_000;
    while (!re.test(text)) {
      const ended = await Promise.race([
        exit.then(() => true),
        new Promise<false>((resolve) => {
          waiters.add(() => resolve(false));
          setTimeout(() => resolve(false), 500).unref();
        }),
      ]);
      waiters.clear();
      if ((ended || Date.now() > deadline) && !re.test(text))
        throw new Error(`no ${re} from run:\n${text}`);
    }
  };
  return { child, exit, output, text: () => text };
}

describe('ftl-ipc run: exit status and signals', { timeout: 60_000 }, () => {
  let dir = '';
  const spec = async (name: string, yaml: string) => {
    const file = join(dir, `${name}.yaml`);
    await writeFile(file, yaml);
    return file;
  };
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ftl-exit-'));
  });
  after(async () => {
    for (const child of running) if (child.exitCode === null) child.kill('SIGKILL');
    await rm(dir, { recursive: true });
  });

  const byItself = [
    { status: 0, when: 'every service returned', b: `${fixture('done')}, isolation: process` },
    { status: 1, when: 'a service failed', b: `${fixture('fail')}, restart: never` },
  ];
  for (const { status, when, b } of byItself) {
    it(`exits ${status} by itself when ${when}`, async () => {
      const yaml = `services:
  - { name: a, module: ${fixture('done')} }
  - { name: b, module: ${b} }
`;
      const r = run(await spec(`by-itself-${status}`, yaml));
      assert.equal(await r.exit, status, r.text());
    });
  }

  it('exits 0 on SIGTERM when everything exited within the grace period', async () => {
    const r = run(
      await spec(
        'graceful',
        `services:
  - { name: server, module: ${root}examples/ping/server.ts, provides: [ping], isolation: process }
`,
      ),
    );
    await r.output(/server started/);
    r.child.kill('SIGTERM');
    assert.equal(await r.exit, 0, r.text());
    assert.match(r.text(), /\[run\] server exited \(code 0\)/);
  });

  /** Starts two services that ignore shutdown (grace 30 s), signals twice; resolves the run. */
  async function signalledTwice(name: string) {
    const r = run(
      await spec(
        name,
        `shutdown: { graceMs: 30000 }
services:
  - { name: thread, module: ${fixture('stubborn')} }
  - { name: proc, module: ${fixture('stubborn')}, isolation: process }
`,
      ),
    );
    await r.output(/\[proc\] ignoring/);
    await r.output(/\[thread\] ignoring/);
    r.child.kill('SIGINT');
    await r.output(/stopping/);
    const second = performance.now();
    r.child.kill('SIGINT');
    const code = await r.exit;
    return { code, took: performance.now() - second, text: r.text() };
  }

  it('a second signal terminates at once, without waiting out the grace period', async () => {
    const { took, text } = await signalledTwice('twice');
    assert.ok(took < 10_000, `ended ${took} ms after the second signal, grace 30 s:\n${text}`);
    assert.match(text, /\[run\] proc exited \(SIGKILL\)/);
  });

  it('services ended by a second signal are reported terminated, and the status is 1', async () => {
    const { code, text } = await signalledTwice('twice-status');
    assert.match(text, /\[run\] thread: terminating it now/);
    assert.match(text, /\[run\] proc: terminating it now/);
    assert.equal(code, 1, text);
  });
});
