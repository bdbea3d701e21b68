import type { ChannelStats } from '../channel/channel.js';
import type { Channel } from '../channel/index.js';
import type { ServiceStatus } from '../runtime/supervisor.js';

/** One channel endpoint as the metrics see it: its labels, its counters and its capacity. */
export interface ChannelSample {
  readonly labels: Readonly<Record<string, string>>;
  readonly stats: ChannelStats;
  readonly capacity?: number | undefined;
}

interface Family {
  readonly name: string;
  readonly type: 'gauge' | 'counter';
  readonly help: string;
  readonly value: (s: ChannelSample) => number | undefined;
}

/** The channel families, after Prometheus conventions: units in the name, counters end in `_total`. */
const CHANNEL_FAMILIES: readonly Family[] = [
  {
    name: 'ftl_ipc_channel_queue_messages',
    type: 'gauge',
    help: "Messages waiting in the endpoint's receive queue.",
    value: (s) => s.stats.queuedMessages,
  },
  {
    name: 'ftl_ipc_channel_queue_bytes',
    type: 'gauge',
    help: "Bytes waiting in the endpoint's receive queue.",
    value: (s) => s.stats.queuedBytes,
  },
  {
    name: 'ftl_ipc_channel_queue_high_water_messages',
    type: 'gauge',
    help: "Most messages ever waiting in the endpoint's receive queue at once.",
    value: (s) => s.stats.highWaterMark,
  },
  {
    name: 'ftl_ipc_channel_capacity_messages',
    type: 'gauge',
    help: "The endpoint's receive queue capacity in messages.",
    value: (s) => s.capacity,
  },
  {
    name: 'ftl_ipc_channel_sent_messages_total',
    type: 'counter',
    help: 'Messages the endpoint sent.',
    value: (s) => s.stats.sent,
  },
  {
    name: 'ftl_ipc_channel_received_messages_total',
    type: 'counter',
    help: 'Messages the endpoint received.',
    value: (s) => s.stats.received,
  },
  {
    name: 'ftl_ipc_channel_sent_bytes_total',
    type: 'counter',
    help: 'Data bytes of the messages the endpoint sent.',
    value: (s) => s.stats.sentBytes,
  },
  {
    name: 'ftl_ipc_channel_received_bytes_total',
    type: 'counter',
    help: 'Data bytes of the messages the endpoint received.',
    value: (s) => s.stats.receivedBytes,
  },
  {
    name: 'ftl_ipc_channel_backpressure_total',
    type: 'counter',
    help: "Sends that found the peer's queue full.",
    value: (s) => s.stats.backpressured,
  },
  {
    name: 'ftl_ipc_channel_dropped_messages_total',
    type: 'counter',
    help: "Messages dropped by onFull 'drop' or 'close'.",
    value: (s) => s.stats.dropped,
  },
  {
    name: 'ftl_ipc_channel_discarded_messages_total',
    type: 'counter',
    help: 'Messages destroyed unread when the endpoint closed.',
    value: (s) => s.stats.discarded,
  },
];

/**
 * Channels a program exposes as Prometheus metrics without `ftl-ipc run`: add each with its
 * labels, serve {@link render}'s text at `/metrics`. A channel leaves the registry when it closes.
 */
export class MetricsRegistry {
  readonly #channels = new Map<Channel, Readonly<Record<string, string>>>();

  /** Adds `channel` with labels such as `{ channel: 'jobs' }` until it closes. */
  add(channel: Channel, labels: Readonly<Record<string, string>>): this {
    this.#channels.set(channel, labels);
    void channel.closed.then(() => this.#channels.delete(channel));
    return this;
  }

  /** The Prometheus text exposition (version 0.0.4) of every channel's counters. */
  render(): string {
    return renderChannelMetrics(
      [...this.#channels].map(([channel, labels]) => ({
        labels,
        stats: channel.stats,
        capacity: channel.limits.capacity,
      })),
    );
  }
}

/** The channel families for `samples` as Prometheus text. */
export function renderChannelMetrics(samples: readonly ChannelSample[]): string {
  let out = '';
  for (const f of CHANNEL_FAMILIES) {
    out += header(f.name, f.type, f.help);
    for (const s of samples) {
      const v = f.value(s);
      if (v !== undefined) out += `${f.name}${labelText(s.labels)} ${v}\n`;
    }
  }
  return out;
}

/** What `ftl-ipc run` exposes: each service's state and restarts, then each reported channel. */
export function renderSystemMetrics(
  services: readonly ServiceStatus[],
  exits: ReadonlyMap<string, number> = new Map(),
): string {
  let out = header('ftl_ipc_service_up', 'gauge', '1 while the service is running, else 0.');
  for (const s of services) {
    out += `ftl_ipc_service_up${labelText({ service: s.name, isolation: s.isolation })} ${s.state === 'running' ? 1 : 0}\n`;
  }
  out += header('ftl_ipc_service_restarts_total', 'counter', 'Times the service was restarted.');
  for (const s of services) {
    out += `ftl_ipc_service_restarts_total${labelText({ service: s.name })} ${s.restarts}\n`;
  }
  out += header('ftl_ipc_service_exits_total', 'counter', 'Times the service exited or failed.');
  for (const s of services) {
    out += `ftl_ipc_service_exits_total${labelText({ service: s.name })} ${exits.get(s.name) ?? 0}\n`;
  }
  return (
    out +
    renderChannelMetrics(
      services.flatMap((s) =>
        s.channels.map((c) => ({
          labels: { service: s.name, channel: c.name },
          stats: c.stats,
          capacity: c.capacity,
        })),
      ),
    )
  );
}

function header(name: string, type: string, help: string): string {
  return `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n`;
}

function labelText(labels: Readonly<Record<string, string>>): string {
  const pairs = Object.entries(labels).map(
    ([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')}"`,
  );
  return pairs.length === 0 ? '' : `{${pairs.join(',')}}`;
}
