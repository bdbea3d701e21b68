/**
 * FTL's ping: the server keeps a counter per client and answers each ping with it; the client
 * makes a few calls over a channel pair. Run with `node dist/examples/ping/main.js`.
 */
import { Channel } from 'ftl-ipc';
import { PingClient, servePing } from './ping.generated.js';

export async function runPing(pings: number): Promise<number[]> {
  const [clientEnd, serverEnd] = Channel.pair();
  let counter = 0;
  const serving = servePing(serverEnd, {
    ping: ({ value }) => {
      counter += value;
      return { value: counter };
    },
  });
  const client = new PingClient(clientEnd, { timeoutMs: 1000 });
  const replies: number[] = [];
  for (let i = 1; i <= pings; i++) replies.push((await client.ping({ value: i })).value);
  client.close();
  await serving;
  return replies;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const value of await runPing(3)) process.stdout.write(`pong ${value}\n`);
}
