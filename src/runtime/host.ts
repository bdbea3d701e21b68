/**
 * The program a service runs in, in a worker thread or a child process: it takes the startup
 * channel from the supervisor, builds the service's env, runs the module's `main(env)` and exits
 * with 0 when it returns, 1 when it throws.
 */
import { pathToFileURL } from 'node:url';
import type { Channel } from '../channel/index.js';
import { isIpcError } from '../errors.js';
import { flushSockets } from '../transport/socket/index.js';
import { Env, type ServiceMain } from './env.js';
import { childStartup } from './isolation.js';
import { type BootInfo, decoder, encoder, StartupMessage } from './startup.js';

async function host(boot: BootInfo, startup: Channel): Promise<void> {
  const stop = new AbortController();
  const env = new Env(boot.service, boot.config, boot.dependencies, stop.signal);
  const ready = listen(startup, env, stop, boot.graceMs);
  const stats = setInterval(() => {
    const data = encoder.encode(JSON.stringify(env.report()));
    startup.send({ type: StartupMessage.stats, data }, { onFull: 'drop' });
  }, boot.statsIntervalMs).unref();

  let code = 0;
  try {
    await ready;
    const module = (await import(pathToFileURL(boot.module).href)) as { default?: unknown };
    if (typeof module.default !== 'function') {
      throw new TypeError(`${boot.module} has no default export function main(env)`);
    }
    await (module.default as ServiceMain)(env);
  } catch (error) {
    // This is the service's own stderr, which the supervisor prefixes with its name.
    if (!stop.signal.aborted || !isIpcError(error, 'ABORTED')) {
      process.stderr.write(
        `${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
      );
      code = 1;
    }
  }
  clearInterval(stats);
  env.closeAll();
  startup.close();
  // What the service sent reaches its peers before the exit (flushSockets); a peer that does not
  // answer, or a service that left timers or sockets open, is cut off a second later at most.
  setTimeout(() => process.exit(code), 1000).unref();
  await flushSockets();
  process.exit(code);
}

/** Feeds the env from the startup channel; resolves once every dependency has its channel. */
function listen(startup: Channel, env: Env, stop: AbortController, graceMs: number): Promise<void> {
  let resolve = () => {};
  let reject = (_: unknown) => {};
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  if (env.ready) resolve();
  void (async () => {
    try {
      for await (const m of startup) {
        const name = decoder.decode(m.data);
        const channel = m.handles[0] as Channel | undefined;
        if (m.type === StartupMessage.stop) stop.abort();
        else if (channel === undefined) continue;
        else if (m.type === StartupMessage.dependency) env.setDependency(name, channel);
        else if (m.type === StartupMessage.newClient) env.addClient(name, channel);
        else channel.close();
        if (env.ready) resolve();
      }
    } catch (error) {
      reject(error);
    }
    // The supervisor is gone: this service must not outlive it. Nobody is left to terminate it
    // after the grace period, so it does so itself.
    stop.abort();
    setTimeout(() => process.exit(1), graceMs).unref();
    reject(new Error('the supervisor went away before the service started'));
  })();
  return promise;
}

const { boot, startup } = await childStartup();
await host(boot, startup);
