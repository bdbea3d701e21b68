import { randomInt } from 'node:crypto';
import type { Endpoint } from '../../channel/endpoint.js';

/**
 * Endpoints this process sent away through a socket, by the origin token their descriptors
 * carry. An end that comes back carries the token again, so this process can tell that it leads
 * to an endpoint here, and refuse to send that endpoint's peer through it (a message loop).
 */
const byToken = new Map<number, Endpoint>();

/** A fresh nonzero token naming `endpoint` while it is bridged. */
export function registerOrigin(endpoint: Endpoint): number {
  let token = randomInt(1, 2 ** 32);
  while (byToken.has(token)) token = randomInt(1, 2 ** 32);
  byToken.set(token, endpoint);
  return token;
}

export function forgetOrigin(token: number): void {
  byToken.delete(token);
}

/** The endpoint in this process that `token` names, if any. */
export function originEndpoint(token: number): Endpoint | undefined {
  return token === 0 ? undefined : byToken.get(token);
}
