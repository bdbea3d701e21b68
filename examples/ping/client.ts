/** Pings the server `config.count` times (default 3), printing each reply, then exits. */
import type { ServiceEnv } from 'ftl-ipc';
import { ping } from './protocol.js';

export default async function main(env: ServiceEnv<{ count?: number }>): Promise<void> {
  const server = env.channel('ping');
  for (let i = 1; i <= (env.config.count ?? 3); i++) {
    console.log(`pong ${await ping(server, i)}`);
  }
}
