/**
 * The hook tracing installs into calls (src/observe/tracing.ts installs one on
 * `@opentelemetry/api`). While none is installed a call pays one read of `callTracer`.
 */

/** A span of one call, client side or server side. */
export interface CallSpan {
  /** Client side: the 26 bytes of trace context to send (docs/wire-format.md), if any. */
  readonly context: Uint8Array | undefined;
  /** Server side: runs the handler inside the span, so the calls it makes are its children. */
  run<T>(fn: () => T): T;
  /** The call settled: with `error` when it failed. */
  end(error?: unknown): void;
}

export interface CallTracer {
  /** A call is made: `name` is the call's full IDL name (`package.protocol.message`). */
  client(name: string): CallSpan | undefined;
  /** A request is served, with the trace context it carried (26 bytes) if any. */
  server(name: string, parent: Uint8Array | undefined): CallSpan | undefined;
}

export let callTracer: CallTracer | undefined;

/** Installs (or, with undefined, removes) the tracer of every client and server of this thread. */
export function setCallTracer(tracer: CallTracer | undefined): void {
  callTracer = tracer;
}
