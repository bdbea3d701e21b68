/** FTL's ping server: answers every ping with how many pings that client has made so far. */
import type { Channel, ServiceEnv } from 'ftl-ipc';
import { int32, PING, PONG } from './protocol.js';

async function serve(client: Channel): Promise<void> {
  let count = 0;
  // Ends when the client hangs up (or restarts): its counter goes with it.
  for await (const m of client) {
    if (m.type !== PING) continue;
    count++;
    await client.sendWait({ type: PONG, data: int32(count) });
  }
  client.close();
}

export default async function main(env: ServiceEnv): Promise<void> {
  for await (const client of env.clients()) void serve(client).catch(() => client.close());
}
