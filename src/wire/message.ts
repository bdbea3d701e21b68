import type { Message, OutgoingMessage } from '../channel/index.js';
import { IPC_ERROR_CODES, IpcError, type IpcErrorCode, isIpcError } from '../errors.js';
import { ERROR_CODE_CAPACITY, ERROR_TEXT_CAPACITY, FLAG_ERROR, FLAG_REPLY } from './frame.js';
import { Reader } from './reader.js';
import { sharedWriter, type Writer } from './writer.js';

/** Everything the runtime needs to send and receive one message type; generated per message. */
export interface MessageDescriptor<T> {
  /** `package.protocol.message`, the name its type id is hashed from. */
  readonly name: string;
  /** The camel-case name that tags it in received unions. */
  readonly kind: string;
  readonly id: number;
  readonly encode: (w: Writer, value: T) => void;
  readonly decode: (r: Reader) => T;
}

/** A call: the request is the message itself, the reply has its own type id and fields. */
export interface CallDescriptor<Req, Rep> extends MessageDescriptor<Req> {
  readonly replyId: number;
  readonly encodeReply: (w: Writer, value: Rep) => void;
  readonly decodeReply: (r: Reader) => Rep;
  /** The most bytes a reply takes (header included); clients without it assume `maxMessageBytes`. */
  readonly maxReplyBytes?: number;
}

export function isCall<T>(d: MessageDescriptor<T>): d is CallDescriptor<T, unknown> {
  return 'replyId' in d;
}

/** `transient`: see {@link Writer.message}; only for a `Channel.send` that follows at once. */
export function encodeMessage<T>(
  d: MessageDescriptor<T>,
  value: T,
  txid = 0,
  transient = false,
): OutgoingMessage {
  // Every message is a struct: anything else would fail deep in the encoder with a TypeError.
  if (typeof value !== 'object' || value === null) {
    throw new IpcError(
      'INVALID_ARGUMENT',
      `${d.name} must be encoded from an object, got ${value === null ? 'null' : typeof value}`,
    );
  }
  return sharedWriter.message(d.id, txid, 0, d.encode, value, transient);
}

export function encodeReply<Req, Rep>(
  d: CallDescriptor<Req, Rep>,
  txid: number,
  value: Rep,
  transient = false,
): OutgoingMessage {
  return sharedWriter.message(d.replyId, txid, FLAG_REPLY, d.encodeReply, value, transient);
}

interface ErrorBody {
  code: string;
  text: string;
}

function encodeErrorBody(w: Writer, v: ErrorBody): void {
  w.string('code', v.code, ERROR_CODE_CAPACITY);
  w.string('text', v.text, ERROR_TEXT_CAPACITY);
}

function decodeErrorBody(r: Reader): ErrorBody {
  return {
    code: r.string('code', ERROR_CODE_CAPACITY),
    text: r.string('text', ERROR_TEXT_CAPACITY),
  };
}

/**
 * A reply saying the call failed with `error`: its IpcError code or HANDLER_FAILED, and its
 * message (or with `stack` its stack), cut to fit as it is only for people to read.
 */
export function encodeErrorReply(
  d: CallDescriptor<unknown, unknown>,
  txid: number,
  error: unknown,
  stack = false,
): OutgoingMessage {
  const code = isIpcError(error) ? error.code : 'HANDLER_FAILED';
  const text =
    error instanceof Error ? ((stack ? error.stack : undefined) ?? error.message) : String(error);
  const body = {
    code: code.slice(0, ERROR_CODE_CAPACITY / 4),
    text: text.slice(0, ERROR_TEXT_CAPACITY / 4),
  };
  return sharedWriter.message(d.replyId, txid, FLAG_REPLY | FLAG_ERROR, encodeErrorBody, body);
}

/**
 * The type id of a relay's error reply: a relay between a client and several servers (the
 * supervisor spreading a service's instances) answers a call it cannot deliver, or whose server
 * died holding it, without knowing the call's reply type.
 */
export const RELAY_ERROR_TYPE = 0;

/** A relay's error reply to transaction `txid`: the client fails the call with `error`'s code. */
export function encodeRelayError(txid: number, error: IpcError): OutgoingMessage {
  const body = {
    code: error.code,
    text: error.message.slice(0, ERROR_TEXT_CAPACITY / 4),
  };
  return sharedWriter.message(
    RELAY_ERROR_TYPE,
    txid,
    FLAG_REPLY | FLAG_ERROR,
    encodeErrorBody,
    body,
  );
}

/** Decodes a message known to be of type `d` (not a reply), checking its header and its end. */
export function decodeMessage<T>(d: MessageDescriptor<T>, message: Message): T {
  if (message.type !== d.id)
    throw new IpcError(
      'INVALID_MESSAGE',
      `(message): type id ${message.type} is not ${d.name} (${d.id})`,
    );
  const r = new Reader(message);
  if (r.isReply)
    throw new IpcError('INVALID_MESSAGE', `(message): ${d.name} arrived flagged as a reply`);
  return finish(r, d.decode);
}

/**
 * Decodes the reply to a call: its returns, or, for an error reply, an IpcError REMOTE_ERROR
 * (returned, not thrown, so callers can tell it from a malformed reply).
 */
export function decodeReply<Req, Rep>(
  d: CallDescriptor<Req, Rep>,
  r: Reader,
  message: Message,
): Rep | IpcError {
  if (message.type === RELAY_ERROR_TYPE && (r.flags & FLAG_ERROR) !== 0) {
    const { code, text } = finish(r, decodeErrorBody);
    const known = (IPC_ERROR_CODES as readonly string[]).includes(code);
    return new IpcError(known ? (code as IpcErrorCode) : 'REMOTE_ERROR', `${d.name}: ${text}`);
  }
  if (message.type !== d.replyId)
    throw new IpcError(
      'INVALID_MESSAGE',
      `(message): type id ${message.type} is not the reply to ${d.name} (${d.replyId})`,
    );
  if ((r.flags & FLAG_ERROR) === 0) return finish(r, d.decodeReply);
  const { code, text } = finish(r, decodeErrorBody);
  return new IpcError('REMOTE_ERROR', `${d.name} failed at the peer: ${text} (${code})`);
}

function finish<T>(r: Reader, body: (r: Reader) => T): T {
  const value = body(r);
  r.end();
  return value;
}

/** One message of a protocol as received: tagged with its kind, and for calls the transaction. */
export interface Received<T = unknown> {
  readonly kind: string;
  /** Set for calls (and always present at run time); the reply must carry it. */
  readonly txid?: number;
  readonly value: T;
}

/** The messages one side of a protocol may receive, looked up by type id. */
export class MessageTable<U extends Received = Received> {
  readonly #byId = new Map<number, MessageDescriptor<unknown>>();

  /** Descriptors of any message types; each is only ever used with its own values. */
  constructor(descriptors: readonly Pick<MessageDescriptor<unknown>, 'id'>[]) {
    for (const d of descriptors) this.#byId.set(d.id, d as MessageDescriptor<unknown>);
  }

  get(id: number): MessageDescriptor<unknown> | undefined {
    return this.#byId.get(id);
  }

  /** Decodes a request or a push; replies are not in a table. */
  decode(message: Message): U {
    const d = this.#byId.get(message.type);
    if (d === undefined)
      throw new IpcError(
        'INVALID_MESSAGE',
        `(message): type id ${message.type} is not a message this side receives`,
      );
    const r = new Reader(message);
    if (r.isReply)
      throw new IpcError('INVALID_MESSAGE', `(message): ${d.name} arrived flagged as a reply`);
    if (!isCall(d) && r.txid !== 0)
      throw new IpcError(
        'INVALID_MESSAGE',
        `(message): ${d.name} is a push but carries transaction id ${r.txid}`,
      );
    if (isCall(d) && r.txid === 0)
      throw new IpcError(
        'INVALID_MESSAGE',
        `(message): ${d.name} is a call but carries no transaction id`,
      );
    return { kind: d.kind, txid: r.txid, value: finish(r, d.decode) } as unknown as U;
  }
}

/** A message that failed to decode still owns its handles; close them so nothing leaks. */
export function discard(message: Message): void {
  for (const handle of message.handles) handle.close();
}
