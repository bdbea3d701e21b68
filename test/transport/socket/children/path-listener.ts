/** Listens on the path in argv[2], says so on stdout, then waits to be killed. */
import { listen } from '../../../../src/index.js';

const listener = await listen({ path: process.argv[2]! });
process.stdout.write('listening\n');
for await (const channel of listener) channel.close();
