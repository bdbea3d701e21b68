import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  hkdfSync,
  timingSafeEqual,
} from 'node:crypto';

/**
 * The protection of a NATS connection with a `secret` (docs/wire-format.md, "NATS protection"):
 * per-direction keys derived with HKDF-SHA256 from the secret, both HELLO nonces, the suite and
 * both subjects; then every message after the handshake is sealed under its sequence number.
 */
export const SUITES = ['aes-256-gcm', 'hmac-sha256'] as const;
/** `aes-256-gcm` encrypts and authenticates; `hmac-sha256` only authenticates (a peer with a hash and an HMAC). */
export type Suite = (typeof SUITES)[number];

export const TAG_BYTES: Record<Suite, number> = { 'aes-256-gcm': 16, 'hmac-sha256': 32 };
const KEY_LABEL = 'ftl-ipc nats keys v1';

function lengthPrefixed(parts: string[]): Buffer {
  const bytes = parts.map((p) => Buffer.from(p, 'utf8'));
  const out = Buffer.alloc(bytes.reduce((n, b) => n + 1 + b.length, 0));
  let at = 0;
  for (const b of bytes) {
    out[at] = b.length;
    b.copy(out, at + 1);
    at += 1 + b.length;
  }
  return out;
}

/**
 * What ties a handshake to this pair of subjects and this suite: `"nats"`, the suite, the
 * connecting side's subject and the listening side's, each after a length byte. The AUTH
 * frames cover it, so a relay that joined two handshakes (different subjects) fails them.
 */
export function binding(suite: Suite, clientSubject: string, serverSubject: string): Buffer {
  return lengthPrefixed(['nats', suite, clientSubject, serverSubject]);
}

/** The keys of the two directions: connecting to listening side (`c2s`), and back. */
export function deriveKeys(
  secret: Uint8Array,
  clientNonce: Uint8Array,
  serverNonce: Uint8Array,
  bound: Buffer,
): { c2s: Buffer; s2c: Buffer } {
  const salt = Buffer.concat([clientNonce, serverNonce]);
  const key = (direction: string) =>
    Buffer.from(
      hkdfSync(
        'sha256',
        secret,
        salt,
        Buffer.concat([Buffer.from(`${KEY_LABEL} ${direction}`), bound]),
        32,
      ),
    );
  return { c2s: key('c2s'), s2c: key('s2c') };
}

/**
 * The 12-byte AES-GCM nonce of a message: its kind byte, three zero bytes and its 64-bit
 * number. A number is used once per kind and key (a resend repeats the same bytes), so no
 * nonce ever seals two different messages.
 */
function nonce(header: Buffer): Buffer {
  const n = Buffer.alloc(12);
  n[0] = header[8] as number;
  header.copy(n, 4, 0, 8);
  return n;
}

/** Seals or opens the messages of one direction. The header (number, kind) is authenticated data. */
export class Sealer {
  readonly suite: Suite;
  readonly tagBytes: number;
  readonly #key: Buffer;

  constructor(suite: Suite, key: Buffer) {
    this.suite = suite;
    this.tagBytes = TAG_BYTES[suite];
    this.#key = key;
  }

  /** `header` ‖ sealed `payload` ‖ tag, as one message. */
  seal(header: Buffer, payload: Uint8Array): Buffer {
    const out = Buffer.allocUnsafe(header.length + payload.length + this.tagBytes);
    header.copy(out, 0);
    if (this.suite === 'aes-256-gcm') {
      const c = createCipheriv('aes-256-gcm', this.#key, nonce(header));
      c.setAAD(header);
      const body = c.update(payload);
      body.copy(out, header.length);
      c.final();
      c.getAuthTag().copy(out, header.length + payload.length);
    } else {
      out.set(payload, header.length);
      this.#mac(out, header.length + payload.length).copy(out, header.length + payload.length);
    }
    return out;
  }

  /** The payload of `message` (header of `headerBytes`), or undefined when it fails to authenticate. */
  open(message: Uint8Array, headerBytes: number): Buffer | undefined {
    const end = message.length - this.tagBytes;
    if (end < headerBytes) return undefined;
    const m = Buffer.from(message.buffer, message.byteOffset, message.length);
    const header = m.subarray(0, headerBytes);
    const tag = m.subarray(end);
    if (this.suite === 'hmac-sha256') {
      return timingSafeEqual(this.#mac(m, end), tag) ? m.subarray(headerBytes, end) : undefined;
    }
    const d = createDecipheriv('aes-256-gcm', this.#key, nonce(header));
    d.setAAD(header);
    d.setAuthTag(tag);
    const plain = d.update(m.subarray(headerBytes, end));
    try {
      d.final();
    } catch {
      return undefined;
    }
    return plain;
  }

  #mac(m: Buffer, end: number): Buffer {
    return createHmac('sha256', this.#key).update(m.subarray(0, end)).digest();
  }
}
