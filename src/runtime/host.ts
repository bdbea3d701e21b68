/**
 * The program a service runs in, in a worker thread or a child process: it takes the startup
 * channel from the supervisor, builds the service's env, runs the module's `main(env)` and exits
 * with 0 when it returns, 1 when it throws.
 */
import { rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Channel } from '../channel/index.js';
import { isIpcError } from '../errors.js';
import {
  connect,
  flushSockets,
  type Listener,
  listen as listenOn,
  privateSocketPath,
} from '../transport/socket/index.js';
import { Env, type ServiceMain } from './env.js';
import { childStartup } from './isolation.js';
import {
  type BootInfo,
  type DependencyAt,
  decoder,
  encoder,
  type ListenFor,
  type Listening,
  StartupMessage,
} from './startup.js';

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
  const links = new DirectLinks(startup, env);
  void (async () => {
    try {
      for await (const m of startup) {
        const name = decoder.decode(m.data);
        const channel = m.handles[0] as Channel | undefined;
        if (m.type === StartupMessage.stop) stop.abort();
        else if (m.type === StartupMessage.listenFor) links.listen(JSON.parse(name) as ListenFor);
        else if (m.type === StartupMessage.dependencyAt) {
          void links.connect(JSON.parse(name) as DependencyAt).then(() => {
            if (env.ready) resolve();
          });
        } else if (channel === undefined) continue;
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

/**
 * The two ends of direct links (docs/runtime.md, "Direct links"): a server listens on a private
 * socket for one client, which connects there, so their channel needs no relay by the supervisor.
 */
class DirectLinks {
  readonly #startup: Channel;
  readonly #env: Env;
  /** A server's listeners still waiting for their client, by client and dependency. */
  readonly #waiting = new Map<string, Listener>();
  /** A client's newest link per dependency: a slower, older connect must not win. */
  readonly #newest = new Map<string, DependencyAt>();

  constructor(startup: Channel, env: Env) {
    this.#startup = startup;
    this.#env = env;
  }

  listen(request: ListenFor): void {
    const key = `${request.client}\0${request.dep}`;
    void this.#waiting.get(key)?.close();
    void (async () => {
      const path = await privateSocketPath();
      try {
        const listener = await listenOn({ path }, { ...request.limits, backlog: 1 });
        this.#waiting.set(key, listener);
        const listening: Listening = { link: request.link, path };
        await this.#startup.sendWait({
          type: StartupMessage.listening,
          data: encoder.encode(JSON.stringify(listening)),
        });
        const channel = await listener.accept();
        if (this.#waiting.get(key) === listener) this.#waiting.delete(key);
        await listener.close();
        if (channel !== undefined) this.#env.addClient(request.client, channel);
      } catch {
        // The supervisor is gone, or the socket could not be made: the client gets no channel
        // from this link, and a new one when this service is started again.
      } finally {
        await rm(dirname(path), { recursive: true, force: true });
      }
    })();
  }

  async connect(at: DependencyAt): Promise<void> {
    this.#newest.set(at.name, at);
    let channel: Channel;
    try {
      channel = await connect({ path: at.path }, at.limits);
    } catch {
      // The server ended before this connected: its next start brings a new link.
      return;
    }
    if (this.#newest.get(at.name) === at) this.#env.setDependency(at.name, channel);
    else channel.close();
  }
}

const { boot, startup } = await childStartup();
await host(boot, startup);
