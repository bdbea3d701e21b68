import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Channel, spawnProcess } from '../../../src/index.js';
import { child } from './helpers.js';

describe('channels between processes', () => {
  it('links two children through this process, keeping order and the bound', async () => {
    const [left, right] = Channel.pair({ capacity: 4 });
    const [reportA, reportAThere] = Channel.pair();
    const [reportB, reportBThere] = Channel.pair();
    const count = 500;
    const [a, b] = await Promise.all([
      spawnProcess(child('peer'), {
        channels: { link: left, report: reportAThere },
        args: [String(count)],
      }),
      spawnProcess(child('peer'), {
        channels: { link: right, report: reportBThere },
        args: [String(count)],
      }),
    ]);
    const sum = (count * (count - 1)) / 2;
    assert.equal((await reportA.recv()).type, sum);
    assert.equal((await reportB.recv()).type, sum);
    await Promise.all([a.exited, b.exited]);
    reportA.close();
    reportB.close();
  });
});
