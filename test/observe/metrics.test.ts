import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Channel, MetricsRegistry, renderSystemMetrics } from 'ftl-ipc';

/** The sample lines of `text` (no comments), as `name{labels} value`. */
const samples = (text: string) => text.split('\n').filter((l) => l !== '' && !l.startsWith('#'));

describe('MetricsRegistry', () => {
  it("renders each channel's counters with its labels, after Prometheus conventions", () => {
    const [a, b] = Channel.pair({ capacity: 2 });
    const registry = new MetricsRegistry().add(a, { channel: 'jobs' });
    a.send({ type: 1 });
    a.send({ type: 1 });
    assert.equal(a.send({ type: 1 }, { onFull: 'drop' }), false);
    const text = registry.render();
    const lines = samples(text);
    for (const line of [
      'ftl_ipc_channel_sent_messages_total{channel="jobs"} 2',
      'ftl_ipc_channel_backpressure_total{channel="jobs"} 1',
      'ftl_ipc_channel_dropped_messages_total{channel="jobs"} 1',
      'ftl_ipc_channel_capacity_messages{channel="jobs"} 2',
      'ftl_ipc_channel_queue_messages{channel="jobs"} 0',
    ]) {
      assert.ok(lines.includes(line), `${line} in\n${text}`);
    }
    // Every family says its type once, before its samples; counters end in _total.
    for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      assert.equal(type === 'counter', name!.endsWith('_total'), name);
    }
    b.close();
  });

  it('escapes label values and forgets a channel once it closes', async () => {
    const [a, b] = Channel.pair();
    const registry = new MetricsRegistry().add(a, { channel: 'a "quoted"\\ \nname' });
    assert.match(registry.render(), /\{channel="a \\"quoted\\"\\\\ \\nname"\} 0$/m);
    a.close();
    await a.closed;
    assert.deepEqual(samples(registry.render()), []);
    b.close();
  });

  it("renders a system's services and their reported channels", () => {
    const [a, b] = Channel.pair();
    const text = renderSystemMetrics(
      [
        {
          name: 'http',
          service: 'http',
          isolation: 'process',
          state: 'running',
          id: 'pid 1',
          restarts: 2,
          channels: [{ name: 'dep:tcpip', stats: a.stats, capacity: 32 }],
        },
      ],
      new Map([['http', 3]]),
    );
    const lines = samples(text);
    assert.ok(lines.includes('ftl_ipc_service_up{service="http",isolation="process"} 1'));
    assert.ok(lines.includes('ftl_ipc_service_restarts_total{service="http"} 2'));
    assert.ok(lines.includes('ftl_ipc_service_exits_total{service="http"} 3'));
    assert.ok(
      lines.includes('ftl_ipc_channel_capacity_messages{service="http",channel="dep:tcpip"} 32'),
    );
    a.close();
    b.close();
  });
});
