/** Connects to the address in argv[2], sends `count` messages on the root channel and stays. */
import { connect, type SocketAddress } from '../../../../src/index.js';

const { address, count, options } = JSON.parse(process.argv[2] as string) as {
  address: SocketAddress;
  count: number;
  options: Record<string, unknown>;
};
const root = await connect(address, options);
for (let i = 0; i < count; i++) await root.sendWait({ type: i });
for await (const _ of root) {
  // Stays connected until the parent closes or kills it.
}
root.close();
