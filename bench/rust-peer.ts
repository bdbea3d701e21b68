/**
 * The TypeScript peer of bench/rust.bench.ts, in a process of its own as the Rust one is:
 * `serve <path>` serves calc (the same handlers as examples/polyglot/calc_service.rs);
 * `blast <path> <count> <size>` sends one-way messages as fast as credits allow.
 */
import { serveCalc } from '../examples/polyglot/calc.generated.js';
import { connect, flushSockets, isIpcError, listen } from '../src/index.js';

const [mode, path, count, size] = process.argv.slice(2);
if (mode === 'serve') {
  const listener = await listen({ path: path! });
  console.log(`listening ${path}`);
  for await (const ch of listener) {
    void serveCalc(ch, {
      add: ({ a, b }) => ({ sum: a + b }),
      stats: ({ values }) => ({
        count: values.length,
        mean: values.reduce((x, y) => x + y, 0) / values.length,
      }),
      shout: ({ text }) => ({ text: `${text.toUpperCase()}!` }),
    });
  }
} else if (mode === 'blast') {
  const ch = await connect({ path: path! });
  const data = new Uint8Array(Number(size));
  const started = performance.now();
  for (let i = 0; i < Number(count); i++) {
    try {
      ch.send({ type: 1, data });
    } catch (error) {
      if (!isIpcError(error) || error.code !== 'BACKPRESSURE') throw error;
      await ch.sendWait({ type: 1, data });
    }
  }
  await flushSockets();
  console.log(`sent ${count} in ${Math.round((performance.now() - started) * 1000)} us`);
  ch.close();
  await flushSockets();
}
