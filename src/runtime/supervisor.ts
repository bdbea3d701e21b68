import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { resolveLimits } from '../channel/channel.js';
import { Channel, type ChannelOptions } from '../channel/index.js';
import { Backoff } from './backoff.js';
import { type ExitInfo, type Instance, launch } from './isolation.js';
import { RemoteSystem } from './remote.js';
import type { DependencySpec, Isolation, ServiceSpec, SystemSpec } from './spec.js';
import { Spread } from './spread.js';
import {
  type ChannelReport,
  type DependencyAt,
  decoder,
  encoder,
  type LinkLimits,
  type ListenFor,
  type Listening,
  StartupMessage,
} from './startup.js';

export type ServiceState = 'running' | 'backoff' | 'exited' | 'failed' | 'stopped';

export interface ServiceStatus {
  /** The service's name, or `name#2` for the second of its `instances`. */
  readonly name: string;
  /** The service's name in the spec. */
  readonly service: string;
  readonly isolation: Isolation;
  readonly state: ServiceState;
  /** `pid 123` or `thread 4` while running. */
  readonly id: string | undefined;
  readonly restarts: number;
  /** The service's channels as it last reported them. */
  readonly channels: readonly ChannelReport[];
}

export type SystemEvent =
  | { readonly service: string; readonly kind: 'start'; readonly id: string }
  | { readonly service: string; readonly kind: 'exit'; readonly exit: ExitInfo }
  | {
      readonly service: string;
      readonly kind: 'restart';
      readonly attempt: number;
      readonly delayMs: number;
    }
  | { readonly service: string; readonly kind: 'give-up'; readonly restarts: number }
  /** At shutdown: it did not return from `main` within the grace period; its exit follows. */
  | { readonly service: string; readonly kind: 'terminate'; readonly graceMs: number };

export interface SystemOptions {
  /** Each line a service writes, without its newline. */
  readonly onLog?: (service: string, stream: 'stdout' | 'stderr', line: string) => void;
  readonly onEvent?: (event: SystemEvent) => void;
  /** How often services report their channels' stats. Default 500 ms. */
  readonly statsIntervalMs?: number;
}

export interface ShutdownReport {
  readonly services: readonly {
    readonly name: string;
    /** `exited` within the grace period, `terminated` after it, `down` when it was not running. */
    readonly outcome: 'exited' | 'terminated' | 'down';
    readonly code: number | null;
  }[];
  readonly ms: number;
}

interface Running {
  /** Settles once the thread or process is up; rejects when it could not be started. */
  readonly launched: Promise<Instance>;
  instance: Instance | undefined;
  readonly startup: Channel;
  readonly startedAt: number;
  /** The socket directories of its direct links: the host removes each once connected, this at its exit. */
  readonly linkDirs: Set<string>;
}

interface Record {
  readonly spec: ServiceSpec;
  /** The service's name, or `name#2` for its second of `instances`. */
  readonly name: string;
  /** Which of the service's instances, from 0. */
  readonly instance: number;
  state: ServiceState;
  running: Running | undefined;
  generation: number;
  restarts: number;
  /** Undefined with restart policy 'never'. */
  readonly retry: Backoff | undefined;
  channels: readonly ChannelReport[];
  backoff: NodeJS.Timeout | undefined;
}

/** The server's end of one client's dependency channel, until it is handed to the server. */
interface Edge {
  serverEnd: Channel | undefined;
  /** For a direct link: the number its server's `listening` reply carries. */
  readonly link?: number;
}

/** A direct link the supervisor asked a server to listen for, until the server answers. */
interface PendingLink {
  readonly client: Record;
  readonly dep: DependencySpec;
  readonly limits: LinkLimits;
}

/**
 * Runs a system: starts every service, makes a channel pair per dependency (the client gets one
 * end as `env.channel(name)`, the server the other from `env.clients()`), restarts services by
 * their policy and shuts everything down on {@link stop}.
 */
export class System {
  readonly spec: SystemSpec;
  /** Settles when every service has ended for good (exited, failed or stopped). */
  readonly done: Promise<void>;
  readonly #options: SystemOptions;
  readonly #records = new Map<string, Record>();
  readonly #edges = new Map<string, Edge>();
  /** The instances of a service with `instances` above 1, by service name. */
  readonly #groups = new Map<string, Record[]>();
  /** Dependencies on such a service, by edge: calls spread over its instances. */
  readonly #spreads = new Map<string, Spread>();
  /** Joins this system to others over NATS when the spec names a server. */
  #remote: RemoteSystem | undefined;
  /** Dependencies resolved over NATS, by edge: each drops its link. */
  readonly #remoteEdges = new Map<string, () => void>();
  readonly #links = new Map<number, PendingLink>();
  #nextLink = 0;
  #stopping = false;
  #resolveDone = () => {};

  constructor(spec: SystemSpec, options: SystemOptions = {}) {
    this.spec = spec;
    this.#options = options;
    this.done = new Promise((resolve) => {
      this.#resolveDone = resolve;
    });
    for (const s of spec.services) {
      const group: Record[] = [];
      for (let instance = 0; instance < s.instances; instance++) {
        const name = s.instances === 1 ? s.name : `${s.name}#${instance + 1}`;
        const record: Record = {
          spec: s,
          name,
          instance,
          state: 'stopped',
          running: undefined,
          generation: 0,
          restarts: 0,
          retry: s.restart.policy === 'never' ? undefined : new Backoff(s.restart),
          channels: [],
          backoff: undefined,
        };
        this.#records.set(name, record);
        group.push(record);
      }
      if (group.length > 1) this.#groups.set(s.name, group);
    }
  }

  start(): void {
    if (this.spec.nats !== undefined) {
      this.#remote = new RemoteSystem(this.spec, this.spec.nats, {
        newClient: (protocol, client, channel) => {
          const server = [...this.#records.values()].find(
            (r) => r.running !== undefined && r.spec.provides.includes(protocol),
          );
          if (server === undefined) return false;
          hand(server.running!.startup, StartupMessage.newClient, client, channel);
          return true;
        },
        log: (line) => this.#options.onLog?.('nats', 'stderr', line),
      });
    }
    for (const record of this.#records.values()) this.#launch(record);
  }

  status(): ServiceStatus[] {
    return [...this.#records.values()].map((r) => ({
      name: r.name,
      service: r.spec.name,
      isolation: r.spec.isolation,
      state: r.state,
      id: r.running?.instance?.id,
      restarts: r.restarts,
      channels: r.channels,
    }));
  }

  /**
   * Asks every service to stop (aborts `env.signal`), gives them `graceMs` (default: the spec's)
   * to return from `main`, then terminates the rest. Resolves when all are gone.
   */
  async stop(graceMs = this.spec.graceMs): Promise<ShutdownReport> {
    const started = performance.now();
    this.#stopping = true;
    const outcomes = [...this.#records.values()].map(async (record) => {
      clearTimeout(record.backoff);
      const running = record.running;
      if (running === undefined) {
        if (record.state === 'backoff') record.state = 'stopped';
        return { name: record.name, outcome: 'down' as const, code: null };
      }
      const instance = await running.launched.catch(() => undefined);
      if (instance === undefined)
        return { name: record.name, outcome: 'down' as const, code: null };
      try {
        running.startup.send({ type: StartupMessage.stop }, { onFull: 'drop' });
      } catch {
        // Its host is already gone; its exit is on the way.
      }
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), graceMs);
      });
      const exit = await Promise.race([instance.exited, late]);
      clearTimeout(timer);
      if (exit !== undefined)
        return { name: record.name, outcome: 'exited' as const, code: exit.code };
      this.#options.onEvent?.({ service: record.name, kind: 'terminate', graceMs });
      instance.terminate();
      const killed = await instance.exited;
      return { name: record.name, outcome: 'terminated' as const, code: killed.code };
    });
    const services = await Promise.all(outcomes);
    for (const edge of this.#edges.values()) edge.serverEnd?.close();
    for (const spread of this.#spreads.values()) spread.close();
    await this.#stopRemote();
    this.#checkDone();
    return { services, ms: performance.now() - started };
  }

  #launch(record: Record): void {
    const { spec } = record;
    const generation = ++record.generation;
    const [startup, theirs] = Channel.pair({ capacity: 64 });
    const launched = launch(
      spec.isolation,
      {
        service: spec.name,
        module: spec.module,
        language: spec.language,
        config: spec.config,
        dependencies: spec.depends.map((d) => d.name),
        graceMs: this.spec.graceMs,
        statsIntervalMs: this.#options.statsIntervalMs ?? 500,
      },
      theirs,
    );
    const running: Running = {
      launched,
      instance: undefined,
      startup,
      startedAt: performance.now(),
      linkDirs: new Set(),
    };
    record.running = running;
    record.state = 'running';
    record.channels = [];
    void this.#readReports(record, running);
    launched.then(
      (instance) => {
        running.instance = instance;
        this.#options.onEvent?.({ service: record.name, kind: 'start', id: instance.id });
        for (const spread of this.#spreadsTo(spec.name))
          spread.started(record.instance, `${record.name} (${instance.id})`);
        for (const [stream, input] of [
          ['stdout', instance.stdout],
          ['stderr', instance.stderr],
        ] as const) {
          createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY }).on('line', (line) =>
            this.#options.onLog?.(record.name, stream, line),
          );
        }
        void instance.exited.then((exit) => this.#exited(record, generation, exit));
      },
      // Not started at all (out of resources, a host that died first): a failure like any
      // other. The error says why, with what the host wrote, which no stream will show now.
      (error: Error) => {
        for (const line of error.message.split('\n'))
          this.#options.onLog?.(record.name, 'stderr', line);
        this.#exited(record, generation, { code: null, signal: null });
      },
    );

    // The startup channel holds what is sent before the service is up.
    for (const dep of spec.depends) this.#connect(record, dep);
    for (const client of this.#records.values()) {
      for (const dep of client.spec.depends) {
        if (dep.service !== spec.name) continue;
        const key = edgeKey(client.name, dep.name);
        const spread = this.#spreads.get(key);
        if (spread !== undefined) {
          this.#attach(spread, client, record);
          continue;
        }
        const edge = this.#edges.get(key);
        if (edge?.serverEnd !== undefined) this.#deliver(edge, client.name, record);
        else if (client.running !== undefined) this.#connect(client, dep);
      }
    }
  }

  async #readReports(record: Record, running: Running): Promise<void> {
    for await (const m of running.startup) {
      if (m.type === StartupMessage.stats) {
        record.channels = JSON.parse(decoder.decode(m.data)) as ChannelReport[];
      } else if (m.type === StartupMessage.listening) {
        const listening = JSON.parse(decoder.decode(m.data)) as Listening;
        const dir = dirname(listening.path);
        // Only what privateSocketPath makes: this removes it recursively.
        if (dirname(dir) === tmpdir() && basename(dir).startsWith('ftl-ipc-'))
          running.linkDirs.add(dir);
        this.#listening(listening);
      }
      for (const h of m.handles) h.close();
    }
  }

  /** A fresh channel pair for `client`'s dependency `dep`; the server gets its end when up. */
  #connect(client: Record, dep: DependencySpec): void {
    if (dep.remote) {
      const key = edgeKey(client.name, dep.name);
      this.#remoteEdges.get(key)?.();
      const drop = this.#remote!.resolve(client.name, dep, (clientEnd) => {
        if (client.running === undefined) clientEnd.close();
        else hand(client.running.startup, StartupMessage.dependency, dep.name, clientEnd);
      });
      this.#remoteEdges.set(key, drop);
      return;
    }
    const options = {
      ...(dep.capacity !== undefined && { capacity: dep.capacity }),
      ...(dep.capacityBytes !== undefined && { capacityBytes: dep.capacityBytes }),
    };
    const key = edgeKey(client.name, dep.name);
    this.#edges.get(key)?.serverEnd?.close();
    const group = this.#groups.get(dep.service);
    if (group !== undefined) {
      this.#spread(client, dep, group, options);
      return;
    }
    const server = this.#records.get(dep.service)!;
    if (directLink(client.spec, server.spec)) {
      const link = ++this.#nextLink;
      this.#edges.set(key, { serverEnd: undefined, link });
      if (server.running === undefined) return;
      const limits = resolveLimits(options);
      this.#links.set(link, { client, dep, limits });
      const listenFor: ListenFor = { client: client.name, dep: dep.name, link, limits };
      tell(server.running.startup, StartupMessage.listenFor, listenFor);
      return;
    }
    const [clientEnd, serverEnd] = Channel.pair(options);
    hand(client.running!.startup, StartupMessage.dependency, dep.name, clientEnd);
    const edge: Edge = { serverEnd };
    this.#edges.set(key, edge);
    if (server.running !== undefined) this.#deliver(edge, client.name, server);
  }

  /**
   * A dependency on a service with several instances: the client gets one channel; calls on it
   * are spread over the running instances (src/runtime/spread.ts), each of which sees the client
   * arrive from `env.clients()`, and again after its restart.
   */
  #spread(
    client: Record,
    dep: DependencySpec,
    group: readonly Record[],
    limits: ChannelOptions,
  ): void {
    const key = edgeKey(client.name, dep.name);
    this.#spreads.get(key)?.close();
    const [clientEnd, front] = Channel.pair(limits);
    const spread = new Spread(front, dep.service, limits);
    this.#spreads.set(key, spread);
    hand(client.running!.startup, StartupMessage.dependency, dep.name, clientEnd);
    for (const server of group)
      if (server.running !== undefined) this.#attach(spread, client, server);
  }

  /** A new channel from `client`'s spread to instance `server`, handed to it as a client. */
  #attach(spread: Spread, client: Record, server: Record): void {
    if (spread.closed) return;
    const id = server.running!.instance?.id;
    const end = spread.attach(
      server.instance,
      id === undefined ? server.name : `${server.name} (${id})`,
    );
    hand(server.running!.startup, StartupMessage.newClient, client.name, end);
  }

  #spreadsTo(service: string): Spread[] {
    return [...this.#spreads.values()].filter((s) => s.service === service);
  }

  /** A server listens for a direct link: the client connects, unless the link is stale. */
  #listening({ link, path }: Listening): void {
    const pending = this.#links.get(link);
    this.#links.delete(link);
    if (pending === undefined) return;
    const { client, dep, limits } = pending;
    const current = this.#edges.get(edgeKey(client.name, dep.name))?.link === link;
    // A stale link's listener waits until its server is asked for a newer one, or ends.
    if (!current || client.running === undefined) return;
    const at: DependencyAt = { name: dep.name, path, limits };
    tell(client.running.startup, StartupMessage.dependencyAt, at);
  }

  #deliver(edge: Edge, client: string, server: Record): void {
    hand(server.running!.startup, StartupMessage.newClient, client, edge.serverEnd!);
    edge.serverEnd = undefined;
  }

  #exited(record: Record, generation: number, exit: ExitInfo): void {
    if (generation !== record.generation) return;
    const { spec } = record;
    const ranMs = performance.now() - (record.running?.startedAt ?? 0);
    record.running?.startup.close();
    // A host that died before its client connected left the socket's directory behind.
    for (const dir of record.running?.linkDirs ?? [])
      void rm(dir, { recursive: true, force: true });
    record.running = undefined;
    // Its listeners for direct links died with it; the clients get new links when it is back.
    for (const [link, { dep }] of this.#links)
      if (dep.service === spec.name) this.#links.delete(link);
    this.#options.onEvent?.({ service: record.name, kind: 'exit', exit });
    for (const spread of this.#spreadsTo(spec.name)) spread.exited(record.instance, exit);
    this.#remote?.providerEnded(spec.provides);
    if (this.#stopping) record.state = 'stopped';
    else if (exit.code === 0) record.state = 'exited';
    else if (record.retry === undefined) record.state = 'failed';
    else {
      const delayMs = record.retry.next(ranMs);
      if (delayMs === undefined) {
        record.state = 'failed';
        this.#options.onEvent?.({
          service: record.name,
          kind: 'give-up',
          restarts: record.restarts,
        });
      } else {
        record.state = 'backoff';
        record.restarts++;
        this.#options.onEvent?.({
          service: record.name,
          kind: 'restart',
          attempt: record.retry.failuresInRow,
          delayMs,
        });
        record.backoff = setTimeout(() => this.#launch(record), delayMs);
      }
    }
    if (record.state === 'failed' || record.state === 'exited') this.#orphan(record);
    this.#checkDone();
  }

  /**
   * `server` will not run again: a client still waiting for its direct link gets a channel whose
   * peer is closed instead, so that it starts and sees PEER_CLOSED, as with a relayed pair.
   */
  #orphan(server: Record): void {
    // A spread's client sees its channel close once no instance will run again.
    const group = this.#groups.get(server.spec.name);
    if (group?.every((r) => r.state === 'failed' || r.state === 'exited'))
      for (const spread of this.#spreadsTo(server.spec.name)) spread.close();
    for (const client of this.#records.values()) {
      for (const dep of client.spec.depends) {
        const key = edgeKey(client.name, dep.name);
        const edge = this.#edges.get(key);
        if (dep.service !== server.spec.name || edge?.link === undefined) continue;
        this.#edges.set(key, { serverEnd: undefined });
        if (client.running === undefined) continue;
        const [clientEnd, serverEnd] = Channel.pair();
        serverEnd.close();
        hand(client.running.startup, StartupMessage.dependency, dep.name, clientEnd);
      }
    }
  }

  #checkDone(): void {
    const states = [...this.#records.values()].map((r) => r.state);
    if (states.every((s) => s === 'exited' || s === 'failed' || s === 'stopped')) {
      // Nothing is left to serve or be served: the NATS connection must not hold the process.
      if (this.#remote === undefined) this.#resolveDone();
      else void this.#stopRemote().then(this.#resolveDone);
    }
  }

  async #stopRemote(): Promise<void> {
    for (const drop of this.#remoteEdges.values()) drop();
    this.#remoteEdges.clear();
    await this.#remote?.stop();
  }
}

/**
 * Whether a dependency gets a socket of its own between the two services instead of a pair
 * relayed by the supervisor: when either runs in a process (two threads share memory, which is
 * faster still) and both are Node services (the Python host speaks only the startup channel).
 */
function directLink(client: ServiceSpec, server: ServiceSpec): boolean {
  const node = client.language === 'node' && server.language === 'node';
  return node && (client.isolation === 'process' || server.isolation === 'process');
}

function edgeKey(client: string, dep: string): string {
  return `${client}\0${dep}`;
}

/** Sends `body` as JSON to a service; if its host is gone, its exit is on the way. */
function tell(startup: Channel, type: number, body: unknown): void {
  startup.sendWait({ type, data: encoder.encode(JSON.stringify(body)) }).catch(() => {});
}

/** Moves `channel` to a service over its startup channel; if that fails the channel is closed. */
function hand(startup: Channel, type: number, name: string, channel: Channel): void {
  startup
    .sendWait({ type, data: encoder.encode(name), handles: [channel] })
    .catch(() => channel.close());
}
