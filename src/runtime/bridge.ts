import { Channel } from '../channel/index.js';

/**
 * A stand-in transport until the worker and socket transports land: it carries channels over
 * anything that posts structured-cloneable values (a worker's port, a child's IPC pipe). Each
 * bridged channel is a numbered stream; a handle in a message becomes a new stream. A sender
 * keeps at most {@link WINDOW} messages unacknowledged per stream, so memory stays bounded and a
 * slow receiver holds the sender back through its channel.
 */
export type WireMessage =
  | { readonly s: number; readonly t: number; readonly d: Uint8Array; readonly h: number[] }
  | { readonly s: number; readonly ack: true }
  | { readonly s: number; readonly close: true };

export interface Wire {
  post(message: WireMessage): void;
}

const WINDOW = 32;

interface Stream {
  readonly local: Channel;
  inflight: number;
  credit: (() => void) | undefined;
  /** Deliveries into `local`, in arrival order. */
  tail: Promise<void>;
}

export class Bridge {
  readonly #wire: Wire;
  readonly #streams = new Map<number, Stream>();
  #next: number;
  #drained: (() => void) | undefined;

  /** The two sides number their streams apart: `side` 0 takes even ids, 1 odd ones. */
  constructor(wire: Wire, side: 0 | 1) {
    this.#wire = wire;
    this.#next = side;
  }

  /** Sends `channel` to the other side, where {@link open} with the returned id gets its twin. */
  attach(channel: Channel): number {
    const id = this.#next;
    this.#next += 2;
    this.#add(id, channel);
    return id;
  }

  /** The channel the other side attached as `id`. */
  open(id: number): Channel {
    const [local, user] = Channel.pair();
    this.#add(id, local);
    return user;
  }

  receive(message: WireMessage): void {
    const stream = this.#streams.get(message.s);
    if ('ack' in message) {
      if (stream === undefined) return;
      stream.inflight--;
      stream.credit?.();
    } else if ('close' in message) {
      if (stream !== undefined) stream.tail = stream.tail.then(() => stream.local.close());
    } else {
      const handles = message.h.map((id) => this.open(id));
      if (stream === undefined) {
        for (const h of handles) h.close();
        return;
      }
      const { t: type, d: data } = message;
      stream.tail = stream.tail.then(async () => {
        try {
          await stream.local.sendWait({ type, data, handles });
        } catch {
          for (const h of handles) h.close();
        }
        this.#wire.post({ s: message.s, ack: true });
      });
    }
  }

  /** The other side is gone: every bridged channel's peer sees PEER_CLOSED. */
  closeAll(): void {
    for (const stream of this.#streams.values()) {
      stream.local.close();
      stream.credit?.();
    }
  }

  /** Resolves when every stream has been closed from this side, or after `timeoutMs`. */
  drained(timeoutMs: number): Promise<void> {
    if (this.#streams.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.#drained = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  #add(id: number, local: Channel): void {
    const stream: Stream = { local, inflight: 0, credit: undefined, tail: Promise.resolve() };
    this.#streams.set(id, stream);
    void this.#pump(id, stream);
  }

  async #pump(id: number, stream: Stream): Promise<void> {
    try {
      for (;;) {
        while (stream.inflight >= WINDOW) {
          await new Promise<void>((resolve) => {
            stream.credit = resolve;
          });
        }
        const m = await stream.local.recv();
        const h = m.handles.map((handle) => this.attach(handle as Channel));
        // A received view may sit in a pooled slab; cloning it would copy the whole slab.
        this.#wire.post({ s: id, t: m.type, d: m.data.slice(), h });
        stream.inflight++;
      }
    } catch {
      this.#wire.post({ s: id, close: true });
      stream.local.close();
      this.#streams.delete(id);
      if (this.#streams.size === 0) this.#drained?.();
    }
  }
}
