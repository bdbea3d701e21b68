/**
 * FTL's ping server as a service: every client that connects gets its own counter, which each
 * ping adds its value to; the reply is the running total.
 */
import type { ServiceEnv } from 'ftl-ipc';
import { servePing } from './ping.generated.js';

export default async function main(env: ServiceEnv): Promise<void> {
  for await (const client of env.clients()) {
    let counter = 0;
    // Ends when the client hangs up (or restarts): its counter goes with it.
    void servePing(client, {
      ping: ({ value }) => {
        counter += value;
        return { value: counter };
      },
    });
  }
}
