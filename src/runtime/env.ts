import type { Channel } from '../channel/index.js';
import { IpcError } from '../errors.js';
import type { ChannelReport } from './startup.js';

/** What a service's `main(env)` gets: its channels, its configuration and its stop signal. */
export interface ServiceEnv<Config = unknown> {
  /** The service's name in the system spec. */
  readonly name: string;
  /** The service's `config` from the spec (`{}` when it has none). */
  readonly config: Config;
  /** Aborted when the system shuts down: finish up and return from `main`. */
  readonly signal: AbortSignal;
  /**
   * The channel to dependency `name`. Throws INVALID_ARGUMENT for a name the spec does not list.
   * After the provider restarts, this returns the new channel (see {@link reconnect}).
   */
  channel(name: string): Channel;
  /**
   * Waits until the supervisor hands over a channel to dependency `name` other than `stale`
   * (default: the current one), which it does when the provider has restarted, and returns it.
   * Rejects with ABORTED at shutdown.
   */
  reconnect(name: string, stale?: Channel): Promise<Channel>;
  /**
   * For a server: the channel of each client, as it connects (FTL's `new_client`), including
   * clients that reconnect after a restart. Ends at shutdown. One consumer at a time.
   */
  clients(): AsyncIterable<Channel>;
  /**
   * Adds a channel the service made itself (a listener, a connection) to its reports: the status
   * table, the live page and `/metrics` show it as `name` until it closes.
   */
  observe(name: string, channel: Channel): void;
}

/** The signature of a service module's default export. */
export type ServiceMain<Config = unknown> = (env: ServiceEnv<Config>) => unknown;

/** The env of one service instance; the host feeds it what arrives on the startup channel. */
export class Env implements ServiceEnv {
  readonly name: string;
  readonly config: unknown;
  readonly signal: AbortSignal;
  readonly #dependencies = new Map<string, Channel | undefined>();
  readonly #waiters = new Map<string, Set<() => void>>();
  readonly #clients: Channel[] = [];
  readonly #allClients = new Map<Channel, string>();
  readonly #observed = new Map<Channel, string>();
  #wakeClients: (() => void) | undefined;

  constructor(name: string, config: unknown, dependencies: readonly string[], signal: AbortSignal) {
    this.name = name;
    this.config = config;
    this.signal = signal;
    for (const dep of dependencies) this.#dependencies.set(dep, undefined);
    signal.addEventListener('abort', () => {
      this.#wakeClients?.();
      for (const waiters of this.#waiters.values()) for (const wake of waiters) wake();
    });
  }

  /** True once every dependency has a channel: `main` may start. */
  get ready(): boolean {
    return [...this.#dependencies.values()].every((c) => c !== undefined);
  }

  setDependency(name: string, channel: Channel): void {
    if (!this.#dependencies.has(name)) {
      channel.close();
      return;
    }
    this.#dependencies.set(name, channel);
    for (const wake of this.#waiters.get(name) ?? []) wake();
  }

  addClient(from: string, channel: Channel): void {
    this.#allClients.set(channel, from);
    // Gone clients leave the status table; a server that lives long sees many come and go.
    void channel.closed.then(() => this.#allClients.delete(channel));
    this.#clients.push(channel);
    this.#wakeClients?.();
  }

  channel(name: string): Channel {
    const channel = this.#dependencies.get(name);
    if (channel === undefined) {
      const known = [...this.#dependencies.keys()].map((d) => `"${d}"`).join(', ') || 'none';
      throw new IpcError(
        'INVALID_ARGUMENT',
        `service "${this.name}" has no dependency "${name}" (it has: ${known})`,
      );
    }
    return channel;
  }

  async reconnect(name: string, stale: Channel = this.channel(name)): Promise<Channel> {
    for (;;) {
      if (this.signal.aborted) {
        throw new IpcError('ABORTED', `service "${this.name}" is shutting down`, {
          cause: this.signal.reason,
        });
      }
      const current = this.channel(name);
      if (current !== stale) return current;
      await new Promise<void>((resolve) => {
        const waiters = this.#waiters.get(name) ?? new Set();
        this.#waiters.set(name, waiters);
        const wake = () => {
          waiters.delete(wake);
          resolve();
        };
        waiters.add(wake);
      });
    }
  }

  async *clients(): AsyncIterable<Channel> {
    while (!this.signal.aborted) {
      const next = this.#clients.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      await new Promise<void>((resolve) => {
        this.#wakeClients = resolve;
      });
      this.#wakeClients = undefined;
    }
  }

  observe(name: string, channel: Channel): void {
    this.#observed.set(channel, name);
    void channel.closed.then(() => this.#observed.delete(channel));
  }

  /** Stats of every channel the service was given or observes, for the supervisor's status table. */
  report(): ChannelReport[] {
    const reports: ChannelReport[] = [];
    const add = (name: string, channel: Channel) =>
      reports.push({ name, stats: channel.stats, capacity: channel.limits.capacity });
    for (const [name, channel] of this.#dependencies) {
      if (channel !== undefined) add(`dep:${name}`, channel);
    }
    for (const [channel, from] of this.#allClients) add(`client:${from}`, channel);
    for (const [channel, name] of this.#observed) add(name, channel);
    return reports;
  }

  /** Closes every channel the service was given, so peers see PEER_CLOSED when it ends. */
  closeAll(): void {
    for (const channel of this.#dependencies.values()) channel?.close();
    for (const channel of this.#allClients.keys()) channel.close();
  }
}
