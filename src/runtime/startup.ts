import type { ChannelStats } from '../channel/index.js';

/**
 * The startup channel between the supervisor and one service instance, as in FTL: the service's
 * dependencies and its new clients arrive on it as moved channels.
 */
export const StartupMessage = {
  /** Supervisor to service: `data` is the dependency name, the one handle its channel. */
  dependency: 0x4654_4c01,
  /** Supervisor to service: `data` is the client service's name, the one handle its channel. */
  newClient: 0x4654_4c02,
  /** Supervisor to service: shut down (aborts `env.signal`). */
  stop: 0x4654_4c03,
  /** Service to supervisor: JSON {@link ChannelReport}[] of the service's channels. */
  stats: 0x4654_4c04,
  /** Supervisor to server: JSON {@link ListenFor}; listen for that one client on a socket. */
  listenFor: 0x4654_4c05,
  /** Server to supervisor: JSON {@link Listening}; where the client of a `listenFor` connects. */
  listening: 0x4654_4c06,
  /** Supervisor to client: JSON {@link DependencyAt}; connect there for that dependency. */
  dependencyAt: 0x4654_4c07,
} as const;

/**
 * The limits of a direct link's root channel, on both sides: those of the `Channel.pair` the
 * supervisor would have made (docs/runtime.md, "Direct links").
 */
export interface LinkLimits {
  readonly capacity: number;
  readonly capacityBytes: number;
  readonly maxMessageBytes: number;
  readonly maxHandles: number;
}

export interface ListenFor {
  /** The client service, as `client:<name>` in the server's status rows. */
  readonly client: string;
  /** The client's dependency: a newer `listenFor` for it replaces a listener still waiting. */
  readonly dep: string;
  /** Names this link in the `listening` reply. */
  readonly link: number;
  readonly limits: LinkLimits;
}

export interface Listening {
  readonly link: number;
  /** A Unix socket in a directory only this user may enter; it takes one connection. */
  readonly path: string;
}

export interface DependencyAt {
  readonly name: string;
  readonly path: string;
  readonly limits: LinkLimits;
}

/** What a service instance needs to know before it runs, passed at launch. */
export interface BootInfo {
  readonly service: string;
  /** Absolute path of the module whose default export is `main(env)`. */
  readonly module: string;
  /** `python`: the module is a Python file, run by `python3 -m ftl_ipc.host` (docs/python.md);
   * `rust`: a built binary that calls `ftl_ipc::host::run` (docs/rust.md). */
  readonly language: 'node' | 'python' | 'rust';
  readonly config: unknown;
  /** The service's dependency names: `env.channel(name)` waits for these. */
  readonly dependencies: readonly string[];
  readonly graceMs: number;
  readonly statsIntervalMs: number;
}

export interface ChannelReport {
  /** `dep:<name>` for a dependency, `client:<service>` for a client of this server. */
  readonly name: string;
  readonly stats: ChannelStats;
  /** The endpoint's queue capacity in messages (absent from peers that do not say). */
  readonly capacity?: number;
}

export const encoder = new TextEncoder();
export const decoder = new TextDecoder();
