import type { ChannelLimits, HandleState } from '../../channel/endpoint.js';
import type { Connection } from './connection.js';

/**
 * One channel id on a connection, seen from this side: either an endpoint living here
 * ({@link SocketEndpoint}) or a bridge to an endpoint that was sent away through this connection.
 * Both keep the same credit books: what this side may still send, and what it granted the far
 * side (credits it holds plus messages in flight), which is the most the far side may send.
 */
export abstract class Link {
  readonly conn: Connection;
  readonly id: number;
  /** Limits of the far side's queue, which this side's sends are checked against. */
  readonly sendLimits: ChannelLimits;
  /** Limits of what the far side may send here. */
  readonly recvLimits: ChannelLimits;
  sendMessages: number;
  sendBytes: number;
  grantMessages: number;
  grantBytes: number;
  /** Credits to grant at the next flush. */
  dueMessages = 0;
  dueBytes = 0;
  /** This side sent CLOSE: nothing more is sent on this id. */
  sentClose = false;
  /** The far side sent CLOSE. The id is free once both have. */
  gotClose = false;
  /** MSGs accepted here before this side's CLOSE; the CLOSE tells the far side (modulo 2^32). */
  accepted = 0;
  /** What the peer's descriptor lets it make this side hold on this id (0 for ids opened here). */
  announcedBytes = 0;
  /** Waiting in the connection's list for room in its output. */
  waitingOutput = false;

  constructor(
    conn: Connection,
    id: number,
    sendLimits: ChannelLimits,
    recvLimits: ChannelLimits,
    send: { messages: number; bytes: number },
    grant: { messages: number; bytes: number },
  ) {
    this.conn = conn;
    this.id = id;
    this.sendLimits = sendLimits;
    this.recvLimits = recvLimits;
    this.sendMessages = send.messages;
    this.sendBytes = send.bytes;
    this.grantMessages = grant.messages;
    this.grantBytes = grant.bytes;
  }

  /** Why the far side may not send this message now, or undefined when it may. */
  refuse(dataBytes: number, handleCount: number, _type: number): string | undefined {
    const { maxMessageBytes, maxHandles } = this.recvLimits;
    if (dataBytes > maxMessageBytes) {
      return `message of ${dataBytes} bytes on channel ${this.id} exceeds its maxMessageBytes ${maxMessageBytes}`;
    }
    if (handleCount > maxHandles) {
      return `message with ${handleCount} handles on channel ${this.id} exceeds its maxHandles ${maxHandles}`;
    }
    if (this.grantMessages < 1 || this.grantBytes < dataBytes) {
      return `message of ${dataBytes} bytes on channel ${this.id} exceeds the credits granted (${this.grantMessages} messages, ${this.grantBytes} bytes)`;
    }
    return undefined;
  }

  /** Why these returned credits are more than this side could ever have spent, if they are. */
  refuseCredit(messages: number, bytes: number): string | undefined {
    const { capacity, capacityBytes } = this.sendLimits;
    if (this.sendMessages + messages > capacity || this.sendBytes + bytes > capacityBytes) {
      return `credit of ${messages} messages and ${bytes} bytes on channel ${this.id} would exceed the queue it stands for (${capacity} messages, ${capacityBytes} bytes)`;
    }
    return undefined;
  }

  /** Grants the far side more credits, sent at the next flush. */
  grant(messages: number, bytes: number): void {
    const wasDue = this.dueMessages + this.dueBytes > 0;
    this.dueMessages += messages;
    this.dueBytes += bytes;
    if (!wasDue) this.conn.creditDue(this);
  }

  /** Sends CLOSE once; the id is freed when the far side has closed too. */
  closeLink(): void {
    if (this.sentClose) return;
    this.sentClose = true;
    this.conn.writeClose(this);
  }

  /**
   * The far side closed after this side accepted `accepted` of the MSGs it sent here: says what
   * is wrong with that count, if anything. Only an endpoint keeps the books this checks.
   */
  closedAfter(_accepted: number): string | undefined {
    return undefined;
  }

  /** The connection's output has room again after this link found it full. */
  outputReady(): void {}

  /**
   * A message arrived (its credits already taken); never called after this side's CLOSE.
   * Returns false when it was dropped here (its handles closed).
   */
  abstract deliver(type: number, data: Uint8Array, handles: HandleState[]): boolean;
  /** The far side returned credits. */
  abstract credit(messages: number, bytes: number): void;
  /** The far side closed, or the connection is gone. */
  abstract farClosed(): void;
}
