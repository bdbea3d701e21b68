/**
 * One client's dependency on a service with `instances: N` (docs/runtime.md, "Instances"): the
 * client holds one channel, as with any dependency; the supervisor holds the other end and a
 * channel to each running instance, and passes every call to the instance with the most free
 * window (the pool's choice, src/pool/balance.ts), its cancel after it, and the replies and
 * pushes back. An instance that ends fails exactly the calls it held, with PEER_CLOSED naming it
 * and its exit; the others go on, and it is attached again when it is back.
 */
import { Channel, type ChannelOptions, type Message } from '../channel/index.js';
import { IpcError } from '../errors.js';
import { describeExit, type Exit, mostFree } from '../pool/balance.js';
import { FLAG_CANCEL } from '../wire/control.js';
import { FLAG_REPLY, HEADER_BYTES } from '../wire/frame.js';
import { discard, encodeRelayError } from '../wire/message.js';

/** How long an instance whose channel closed has for its exit to be known, to name it. */
const EXIT_GRACE_MS = 1000;

/** The channel to one running instance, for this client. */
interface Lane {
  readonly index: number;
  readonly channel: Channel;
  /** Who it is (`calc#2 (thread 7)`), once its thread or process is up. */
  who: string;
  inFlight: number;
  /** False once its channel closed or it exited: it takes no more calls. */
  open: boolean;
  /** Settles with its exit, told by the supervisor. */
  readonly exited: Promise<string>;
  readonly exit: (why: string) => void;
}

function isOpen(lane: Lane): boolean {
  return lane.open;
}

function txidOf(data: Uint8Array): number {
  return (data[4]! | (data[5]! << 8) | (data[6]! << 16) | (data[7]! << 24)) >>> 0;
}

export class Spread {
  /** The service whose instances take the calls. */
  readonly service: string;
  readonly #front: Channel;
  readonly #limits: ChannelOptions;
  readonly #lanes = new Map<number, Lane>();
  /** Calls passed on and not answered yet: which lane holds each, by transaction id. */
  readonly #calls = new Map<number, Lane>();
  #closed = false;

  /** `front`: the supervisor's end of the client's channel; `limits`: the dependency's. */
  constructor(front: Channel, service: string, limits: ChannelOptions) {
    this.#front = front;
    this.service = service;
    this.#limits = limits;
    void this.#readFront();
  }

  /** A new channel to instance `index`: the returned end is the instance's new client. */
  attach(index: number, who: string): Channel {
    this.#lanes.get(index)?.channel.close();
    const [mine, theirs] = Channel.pair(this.#limits);
    let exit = (_: string) => {};
    const exited = new Promise<string>((resolve) => {
      exit = resolve;
    });
    const lane: Lane = { index, channel: mine, who, inFlight: 0, open: true, exited, exit };
    this.#lanes.set(index, lane);
    if (this.#closed) mine.close();
    else void this.#readLane(lane);
    return theirs;
  }

  /** The instance is up: its id names it in errors. */
  started(index: number, who: string): void {
    const lane = this.#lanes.get(index);
    if (lane !== undefined) lane.who = who;
  }

  /** The instance ended: it takes no more calls, and those it held fail naming its exit. */
  exited(index: number, exit: Exit): void {
    const lane = this.#lanes.get(index);
    if (lane === undefined) return;
    lane.open = false;
    lane.exit(`${lane.who} ${describeExit(exit)}`);
  }

  /** The client is gone, or no instance will run again. */
  get closed(): boolean {
    return this.#closed;
  }

  /** The client is gone, or no instance will run again: every channel closes. */
  close(): void {
    this.#closed = true;
    this.#front.close();
    for (const lane of this.#lanes.values()) lane.channel.close();
  }

  async #readFront(): Promise<void> {
    try {
      for await (const m of this.#front) await this.#pass(m);
    } catch {
      // The client is gone: its instances see their channels close.
    }
    this.close();
  }

  /** A message from the client: a call to the freest instance, a cancel after its call. */
  async #pass(m: Message): Promise<void> {
    const data = m.data;
    const txid = data.length >= HEADER_BYTES ? txidOf(data) : 0;
    let lane: Lane | undefined;
    if (txid !== 0 && (data[3]! & FLAG_CANCEL) !== 0) {
      lane = this.#calls.get(txid);
      if (lane === undefined) return discard(m);
    } else {
      // Every lane has room for the client's whole window (its own bound), so the freest is the
      // one with the fewest in flight, and any open lane can take the call.
      lane = mostFree(this.#lanes.values(), Number.MAX_SAFE_INTEGER, isOpen);
      if (lane === undefined) {
        discard(m);
        if (txid !== 0) this.#fail(txid, `no instance of ${this.service} is running`);
        return;
      }
      if (txid !== 0) {
        this.#calls.set(txid, lane);
        lane.inFlight++;
      }
    }
    try {
      await lane.channel.sendWait(m);
    } catch {
      // The instance went away first: the call is failed with the others it held.
    }
  }

  async #readLane(lane: Lane): Promise<void> {
    try {
      for await (const m of lane.channel) {
        const data = m.data;
        if (data.length >= HEADER_BYTES && (data[3]! & FLAG_REPLY) !== 0) {
          const txid = txidOf(data);
          if (this.#calls.get(txid) === lane) {
            this.#calls.delete(txid);
            lane.inFlight--;
          }
        }
        await this.#front.sendWait(m);
      }
    } catch {
      // Closed, or the client is gone.
    }
    // It stays in #lanes, closed, for `exited` to name it, until its restart replaces it.
    lane.open = false;
    if (this.#closed) return;
    let timer: NodeJS.Timeout | undefined;
    const why = await Promise.race([
      lane.exited,
      new Promise<string>((resolve) => {
        timer = setTimeout(resolve, EXIT_GRACE_MS, `${lane.who} closed its channel`);
      }),
    ]);
    clearTimeout(timer);
    for (const [txid, holder] of this.#calls) {
      if (holder !== lane) continue;
      this.#calls.delete(txid);
      this.#fail(txid, `${why} while it held the call`);
    }
  }

  #fail(txid: number, why: string): void {
    const reply = encodeRelayError(txid, new IpcError('PEER_CLOSED', why));
    this.#front.sendWait(reply).catch(() => {});
  }
}
