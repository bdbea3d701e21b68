/** Pings the server with 1, 2, ... `config.count` (default 3), printing each total, then exits. */
import type { ServiceEnv } from 'ftl-ipc';
import { PingClient } from './ping.generated.js';

export default async function main(env: ServiceEnv<{ count?: number }>): Promise<void> {
  const server = new PingClient(env.channel('ping'), { timeoutMs: 5000 });
  for (let i = 1; i <= (env.config.count ?? 3); i++) {
    console.log(`pong ${(await server.ping({ value: i })).value}`);
  }
  server.close();
}
