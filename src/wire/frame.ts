/**
 * The 8-byte header that starts every message's `data` (docs/wire-format.md): the type id and
 * the handles travel beside `data` in the transport's message, so the header only carries what
 * a transport does not: magic, version, flags and the transaction id.
 */
export const MAGIC_0 = 0x46; // 'F'
export const MAGIC_1 = 0x49; // 'I'
export const VERSION = 1;
export const HEADER_BYTES = 8;

/** The message answers the call with the same transaction id. */
export const FLAG_REPLY = 0x01;
/** A reply whose payload is an error (code and text) instead of the call's returns. */
export const FLAG_ERROR = 0x02;
export const KNOWN_FLAGS = FLAG_REPLY | FLAG_ERROR;

/** What an error reply's payload holds, and the capacities its two strings are checked against. */
export const ERROR_CODE_CAPACITY = 64;
export const ERROR_TEXT_CAPACITY = 1024;
