/**
 * Traces through calls: a TypeScript client calls a TypeScript server whose handler calls a
 * Python server, with the OpenTelemetry SDK's in-memory exporter: one trace, each span the
 * child of the one before it, and the Python handler sees the last client span as its parent.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { context, SpanKind, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  SimpleSpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { Channel, connect, disableTracing, enableTracing } from 'ftl-ipc';
import { within } from '../channel/helpers.js';
import { root } from '../runtime/helpers.js';
import { serveWork, WorkClient } from '../wire/rpctest.generated.js';

describe('tracing through calls', { timeout: 60_000 }, () => {
  const exporter = new InMemorySpanExporter();
  let dir = '';
  let python: ChildProcess;
  let seen: AsyncIterator<string>;
  let client: WorkClient;
  let toPython: WorkClient;

  before(async () => {
    trace.setGlobalTracerProvider(
      new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }),
    );
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    dir = await mkdtemp(join(tmpdir(), 'ftl-trace-'));
    const path = join(dir, 'py.sock');
    python = spawn('python3', ['-m', 'tests.trace_server', path], {
      cwd: join(root, 'python'),
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    seen = createInterface({ input: python.stdout! })[Symbol.asyncIterator]();
    await within(seen.next(), 20_000, 'the Python server listening');
    toPython = new WorkClient(await connect({ path }));
    const [mine, theirs] = Channel.pair();
    // The TypeScript server: its handler's call to Python is made inside its span.
    void serveWork(theirs, {
      add: async ({ value }) => ({ value: (await toPython.add({ value })).value * 10 }),
      hang: () => Promise.reject(new Error('not in this test')),
      noisy: ({ value }) => ({ value }),
    });
    client = new WorkClient(mine);
  });

  after(async () => {
    disableTracing();
    client?.close();
    toPython?.close();
    if (python?.exitCode === null) {
      python.kill();
      await once(python, 'exit');
    }
    await rm(dir, { recursive: true, force: true });
    trace.disable();
    context.disable();
  });

  const traceparentAtPython = async () =>
    (
      JSON.parse((await within(seen.next(), 10_000, 'the Python handler')).value) as {
        traceparent: string | null;
      }
    ).traceparent;

  it('one trace: client → TypeScript server → client → Python server, each the child of the last', async () => {
    assert.equal(await enableTracing(), true);
    assert.deepEqual(await client.add({ value: 1 }), { value: 20 });
    const atPython = await traceparentAtPython();
    const spans = exporter.getFinishedSpans();
    assert.equal(spans.length, 3, spans.map((s) => s.name).join(', '));
    const byKind = (kind: SpanKind) => spans.filter((s) => s.kind === kind);
    const [server] = byKind(SpanKind.SERVER);
    const clients = byKind(SpanKind.CLIENT);
    const outer = clients.find((s) => s.parentSpanContext === undefined)!;
    const inner = clients.find((s) => s !== outer)!;
    assert.ok(server !== undefined && outer !== undefined && inner !== undefined);
    for (const span of spans) {
      assert.equal(span.name, 'rpctest.work/add');
      assert.equal(span.spanContext().traceId, outer.spanContext().traceId, 'one trace');
      assert.deepEqual(span.attributes, {
        'rpc.system': 'ftl-ipc',
        'rpc.service': 'rpctest.work',
        'rpc.method': 'add',
      });
    }
    assert.equal(server.parentSpanContext?.spanId, outer.spanContext().spanId);
    assert.equal(server.parentSpanContext?.isRemote, true);
    assert.equal(inner.parentSpanContext?.spanId, server.spanContext().spanId);
    const { traceId, spanId } = inner.spanContext();
    assert.equal(atPython, `00-${traceId}-${spanId}-01`);
  });

  it('is off after disableTracing(): no spans, no trace context on the wire', async () => {
    disableTracing();
    exporter.reset();
    assert.deepEqual(await client.add({ value: 2 }), { value: 30 });
    assert.equal(await traceparentAtPython(), null);
    assert.deepEqual(exporter.getFinishedSpans(), []);
  });
});
