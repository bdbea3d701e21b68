/**
 * Systems across machines: with a NATS server in the spec (or FTL_NATS_URL), every protocol a
 * local service provides is also offered over NATS (and registered with the NATS service API),
 * and a dependency no local service provides is resolved over NATS.
 *
 * Each remote dependency edge is one NATS connection (a *link*): the client's supervisor makes
 * the `Channel.pair` with the dependency's limits, as for a local edge, and sends the server's end
 * over the link; the provider's supervisor hands it to the provider as a new client. The bound is
 * the pair's, end to end. When the provider ends, its supervisor closes the link, and the client's
 * supervisor makes a new one (the client gets it from `env.reconnect`).
 */
import { Svcm } from '@nats-io/services';
import { type NatsConnection, connect as natsConnect } from '@nats-io/transport-node';
import { Channel, type ChannelOptions, type Message } from '../channel/index.js';
import { connect, listen } from '../transport/address.js';
import type { NatsAddress } from '../transport/nats/index.js';
import { DEFAULT_MAX_PEER_BYTES } from '../transport/socket/connection.js';
import type { Listener } from '../transport/socket/listen.js';
import type { DependencySpec, SystemSpec } from './spec.js';
import { decoder, encoder } from './startup.js';

/** How long a client's supervisor waits before it asks again for a provider that is not there. */
const RETRY_MS = 500;
/** How long the supervisor waits before it tries again to reach a NATS server it could not. */
const NATS_RETRY_MS = 2000;
/** The most a link's first message (the client's name) may hold. */
const MAX_NAME_BYTES = 256;
/** A link's first message: the client's name, and the server's end of the pair. */
const LINK_OPEN = 1;

/**
 * How links are protected: with FTL_NATS_SECRET (the same on every system of the cluster), or,
 * with FTL_NATS_INSECURE=1, not at all. Otherwise a sentence for the log, and no links.
 */
function linkSecurity(): { secret: string } | { insecure: true } | string {
  const secret = process.env.FTL_NATS_SECRET;
  if (secret !== undefined && secret !== '') return { secret };
  if (process.env.FTL_NATS_INSECURE === '1') return { insecure: true };
  return 'not joining NATS: set FTL_NATS_SECRET (the same on every system) to protect the links, or FTL_NATS_INSECURE=1 to run them in clear (docs/nats.md, "Without a secret")';
}

export interface RemoteHooks {
  /** A remote client arrived for `protocol`; false when no provider of it runs now. */
  newClient(protocol: string, client: string, channel: Channel): boolean;
  /** For the run's log: what happened on NATS. */
  log(line: string): void;
}

export class RemoteSystem {
  readonly #spec: SystemSpec;
  readonly #hooks: RemoteHooks;
  readonly #nc: Promise<NatsConnection | undefined>;
  #security: { secret: string } | { insecure: true } = { insecure: true };
  readonly #listeners: Listener<NatsAddress>[] = [];
  readonly #services: { stop(): Promise<unknown> }[] = [];
  /** Links accepted for each protocol, closed when its provider ends. */
  readonly #links = new Map<string, Set<Channel>>();
  #stopped = false;
  /** Ends the wait between two attempts to reach NATS, at stop(). */
  #stopWaiting = () => {};

  constructor(spec: SystemSpec, servers: readonly string[], hooks: RemoteHooks) {
    this.#spec = spec;
    this.#hooks = hooks;
    const security = linkSecurity();
    if (typeof security === 'string') {
      hooks.log(security);
      this.#nc = Promise.resolve(undefined);
      return;
    }
    this.#security = security;
    this.#nc = this.#connect(servers).then(async (nc) => {
      if (nc !== undefined) await this.#offer(nc);
      return nc;
    });
  }

  /**
   * Reaches a NATS server, trying again every NATS_RETRY_MS until one answers or the run stops
   * (each side of a two-host system may start before the server); the log says so once, and once
   * more when it is reached. Once connected, the client reconnects by itself without limit.
   */
  async #connect(servers: readonly string[]): Promise<NatsConnection | undefined> {
    const where = servers.join(', ');
    for (let attempt = 1; !this.#stopped; attempt++) {
      try {
        const nc = await natsConnect({
          servers: [...servers],
          maxReconnectAttempts: -1,
          reconnectTimeWait: NATS_RETRY_MS,
          name: this.#spec.name,
        });
        if (attempt > 1) this.#hooks.log(`connected to NATS ${where} (attempt ${attempt})`);
        void this.#watch(nc, where);
        return nc;
      } catch (err) {
        if (attempt === 1) {
          this.#hooks.log(
            `cannot connect to NATS ${where}: ${(err as Error).message}; retrying every ${NATS_RETRY_MS / 1000} s until a server answers, without limit (nothing is offered or linked over NATS meanwhile; stop the run to give up)`,
          );
        }
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, NATS_RETRY_MS);
        this.#stopWaiting = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return undefined;
  }

  /** Tells the log when the NATS connection is lost and when it is back. */
  async #watch(nc: NatsConnection, where: string): Promise<void> {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect') {
        this.#hooks.log(
          `lost NATS ${status.server}; reconnecting to ${where} every ${NATS_RETRY_MS / 1000} s, without limit`,
        );
      } else if (status.type === 'reconnect') {
        this.#hooks.log(`reconnected to NATS ${status.server}`);
      }
    }
  }

  /** Offers every provided protocol over NATS and registers it with the NATS service API. */
  async #offer(nc: NatsConnection): Promise<void> {
    const svcm = new Svcm(nc as never);
    for (const service of this.#spec.services) {
      for (const protocol of service.provides) {
        // A link's first message opens the client's channel, often before `accept()` took the
        // link: the whole peer budget applies from the start (the accept loop takes every link).
        const listener = await listen(
          { nats: nc, service: protocol },
          { maxUnacceptedBytes: DEFAULT_MAX_PEER_BYTES, ...this.#security },
        );
        this.#listeners.push(listener);
        void this.#accept(protocol, listener);
        const registered = await svcm.add({
          name: protocol,
          version: '1.0.0',
          description: `ftl-ipc protocol ${protocol} (service ${service.name} of system ${this.#spec.name})`,
          metadata: { 'ftl-ipc.system': this.#spec.name, 'ftl-ipc.service': service.name },
        });
        // `nats micro` lists, pings and counts it; the endpoint says how to connect.
        registered.addEndpoint('connect', {
          subject: `ftl-ipc.info.${protocol}`,
          handler: (_err, msg) =>
            msg.respond(JSON.stringify({ connect: `ftl-ipc.svc.${protocol}`, protocol })),
        });
        this.#services.push(registered);
        this.#hooks.log(`offering ${protocol} (service ${service.name}) over NATS`);
      }
    }
  }

  async #accept(protocol: string, listener: Listener<NatsAddress>): Promise<void> {
    for await (const link of listener) {
      void this.#opened(protocol, link);
    }
  }

  /** A remote supervisor opened a link: LINK_OPEN carries the server's end of a pair it made. */
  async #opened(protocol: string, link: Channel): Promise<void> {
    const first = await link.recv().catch(() => undefined);
    if (first === undefined || !this.#serve(protocol, first)) {
      for (const h of first?.handles ?? []) h.close();
      link.close();
      return;
    }
    const links = this.#links.get(protocol) ?? new Set();
    this.#links.set(protocol, links);
    links.add(link);
    // The link lives as long as the client's supervisor keeps it, or until the provider ends.
    await link.recv().catch(() => undefined);
    links.delete(link);
    link.close();
  }

  /** Hands a link's client to the provider; false when the request is refused. */
  #serve(protocol: string, first: Message): boolean {
    if (this.#stopped || first.data.byteLength > MAX_NAME_BYTES) return false;
    const end = first.handles[0];
    if (first.type !== LINK_OPEN || first.handles.length !== 1 || !(end instanceof Channel)) {
      return false;
    }
    return this.#hooks.newClient(protocol, decoder.decode(first.data), end);
  }

  /** The provider of `protocol` ended: its remote clients' supervisors will link again. */
  providerEnded(protocols: readonly string[]): void {
    for (const protocol of protocols) {
      for (const link of this.#links.get(protocol) ?? []) link.close();
      this.#links.delete(protocol);
    }
  }

  /**
   * Keeps `client`'s dependency `dep` linked to a provider over NATS: each time a link opens,
   * `hand` gets the client's end of a fresh pair, whose other end went over the link. Either
   * end moves on into a worker thread (through a relay for the one that crossed NATS), so where
   * the two services run does not matter here. Returns a function that drops the edge (the
   * client restarted, or the system stops).
   */
  resolve(client: string, dep: DependencySpec, hand: (channel: Channel) => void): () => void {
    let dropped = false;
    let link: Channel | undefined;
    const name = `${this.#spec.name}/${client}`;
    const limits: ChannelOptions = {
      ...(dep.capacity !== undefined && { capacity: dep.capacity }),
      ...(dep.capacityBytes !== undefined && { capacityBytes: dep.capacityBytes }),
    };
    void (async () => {
      const nc = await this.#nc;
      while (nc !== undefined && !dropped && !this.#stopped) {
        link = await connect({ nats: nc, service: dep.protocol }, this.#security).catch(
          () => undefined,
        );
        const clientEnd = link === undefined ? undefined : await this.#link(link, name, limits);
        if (dropped || this.#stopped) {
          clientEnd?.close();
          break;
        }
        if (link !== undefined && clientEnd !== undefined) {
          this.#hooks.log(`${client}: ${dep.name} linked to ${dep.protocol} over NATS`);
          hand(clientEnd);
          // Nothing else travels on the link: it ends when the provider's side closes it.
          await link.recv().catch(() => undefined);
        }
        link?.close();
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
      }
      link?.close();
    })();
    return () => {
      dropped = true;
      link?.close();
    };
  }

  /** Opens an edge on a new link; resolves with the client's end, or undefined when refused. */
  async #link(link: Channel, client: string, limits: ChannelOptions): Promise<Channel | undefined> {
    const [clientEnd, serverEnd] = Channel.pair(limits);
    const data = encoder.encode(client);
    const sent = await link.sendWait({ type: LINK_OPEN, data, handles: [serverEnd] }).then(
      () => true,
      () => false,
    );
    if (sent) return clientEnd;
    serverEnd.close();
    clientEnd.close();
    return undefined;
  }

  /** Stops offering and closes the NATS connection (and with it every link). */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#stopWaiting();
    const nc = await this.#nc;
    for (const s of this.#services) await s.stop().catch(() => undefined);
    for (const l of this.#listeners) await l.close();
    for (const links of this.#links.values()) for (const link of links) link.close();
    await nc?.close();
  }
}
