/** The TypeScript client of examples/polyglot: calls the Python calc service and prints the answers. */
import { IpcError, type ServiceEnv } from 'ftl-ipc';
import { CalcClient } from './calc.generated.js';

export default async function main(env: ServiceEnv) {
  const calc = new CalcClient(env.channel('calc'), { timeoutMs: 5000 });
  const { sum } = await calc.add({ a: 2n ** 40n, b: 2n });
  console.log(`add: 2^40 + 2 = ${sum}`);
  const { count, mean } = await calc.stats({ values: [1, 2, 3, 4.5] });
  console.log(`stats: ${count} values, mean ${mean}`);
  console.log(`shout: ${(await calc.shout({ text: 'hello from typescript' })).text}`);
  try {
    await calc.stats({ values: [] });
  } catch (error) {
    console.log(`stats of nothing: ${error instanceof IpcError ? error.code : error}`);
  }
  calc.close();
}
