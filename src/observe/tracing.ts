import type * as Otel from '@opentelemetry/api';
import { TRACE_BYTES } from '../wire/control.js';
import { type CallSpan, type CallTracer, setCallTracer } from '../wire/trace.js';

/**
 * Makes every call of generated clients and servers in this thread an OpenTelemetry span, and
 * sends the caller's trace context with each request (docs/observability.md). Loads
 * `@opentelemetry/api`, an optional peer dependency: false when it is not installed (nothing
 * changes then). Spans go wherever the application's OpenTelemetry SDK sends them; without an
 * SDK they are the API's no-ops.
 */
export async function enableTracing(): Promise<boolean> {
  let api: typeof Otel;
  try {
    api = await import('@opentelemetry/api');
  } catch {
    return false;
  }
  setCallTracer(otelTracer(api));
  return true;
}

/** Calls are plain again: no spans, no trace context on the wire. */
export function disableTracing(): void {
  setCallTracer(undefined);
}

function otelTracer(api: typeof Otel): CallTracer {
  const tracer = api.trace.getTracer('ftl-ipc');
  const start = (name: string, kind: Otel.SpanKind, parent: Otel.Context) => {
    // `package.protocol.message`: the service is the protocol, the method the message.
    const dot = name.lastIndexOf('.');
    const service = name.slice(0, dot);
    const method = name.slice(dot + 1);
    return tracer.startSpan(
      `${service}/${method}`,
      {
        kind,
        attributes: { 'rpc.system': 'ftl-ipc', 'rpc.service': service, 'rpc.method': method },
      },
      parent,
    );
  };
  const wrap = (span: Otel.Span, parent: Otel.Context, context: Uint8Array | undefined) => {
    const inside = api.trace.setSpan(parent, span);
    return {
      context,
      run: <T>(fn: () => T): T => api.context.with(inside, fn),
      end(error?: unknown) {
        if (error !== undefined) {
          span.setStatus({ code: api.SpanStatusCode.ERROR, message: String(error) });
          if (error instanceof Error) span.recordException(error);
        }
        span.end();
      },
    } satisfies CallSpan;
  };
  return {
    client(name) {
      const parent = api.context.active();
      const span = start(name, api.SpanKind.CLIENT, parent);
      const sc = span.spanContext();
      return wrap(span, parent, api.trace.isSpanContextValid(sc) ? encodeTrace(sc) : undefined);
    },
    server(name, trace) {
      const parent =
        trace === undefined
          ? api.ROOT_CONTEXT
          : api.trace.setSpanContext(api.ROOT_CONTEXT, decodeTrace(trace));
      return wrap(start(name, api.SpanKind.SERVER, parent), parent, undefined);
    },
  };
}

/** W3C Trace Context's fields in binary: version 0, trace id, parent (span) id, flags. */
function encodeTrace(sc: Otel.SpanContext): Uint8Array {
  const bytes = new Uint8Array(TRACE_BYTES);
  bytes.set(Buffer.from(sc.traceId, 'hex'), 1);
  bytes.set(Buffer.from(sc.spanId, 'hex'), 17);
  bytes[25] = sc.traceFlags;
  return bytes;
}

function decodeTrace(bytes: Uint8Array): Otel.SpanContext {
  const hex = (from: number, to: number) => Buffer.from(bytes.subarray(from, to)).toString('hex');
  return { traceId: hex(1, 17), spanId: hex(17, 25), traceFlags: bytes[25]!, isRemote: true };
}
