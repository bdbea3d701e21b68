import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { main } from '../../src/cli/main.js';
import { checkCompatibility, loadIdlOrThrow } from '../../src/idl/index.js';

const base = `name: demo
enums:
  mode: [off, on]
structs:
  point: [{ name: x, type: int32 }]
protocols:
  p:
    - name: move
      type: call
      params: [{ name: to, type: point }, { name: mode, type: mode }]
      returns: [{ name: ok, type: bool }]
    - { name: note, type: push, origin: client, params: [{ name: text, type: string, capacity: 8 }] }
`;

const problems = (after: string) =>
  checkCompatibility(
    loadIdlOrThrow(['/v1.yaml'], () => base),
    loadIdlOrThrow(['/v2.yaml'], () => after),
  ).map((p) => p.message);

describe('IDL evolution', () => {
  it('accepts appended optional fields, new messages and new enum values', () => {
    const after = base
      .replace('mode: [off, on]', 'mode: [off, on, auto]')
      .replace(
        '{ name: mode, type: mode }]',
        '{ name: mode, type: mode }, { name: speed, type: uint8, optional: true }]',
      )
      .replace(
        'returns: [{ name: ok, type: bool }]',
        'returns: [{ name: ok, type: bool }, { name: why, type: string, capacity: 9, optional: true }]',
      )
      .concat('    - { name: extra, type: push, origin: server }\n');
    assert.deepEqual(problems(after), []);
  });

  it('names every breaking change', () => {
    const after = base
      .replace('mode: [off, on]', 'mode: [on, off]')
      .replace(
        'point: [{ name: x, type: int32 }]',
        'point: [{ name: x, type: int32 }, { name: y, type: int32, optional: true }]',
      )
      .replace(
        '{ name: mode, type: mode }]',
        '{ name: mode, type: mode }, { name: speed, type: uint8 }]',
      )
      .replace('capacity: 8', 'capacity: 16')
      .replace('type: push, origin: client', 'type: push, origin: server');
    assert.deepEqual(problems(after), [
      'struct point went from 1 to 2 fields; structs sit inside messages and cannot change size',
      "struct point: new field y must be optional and appended to a message, so older peers' messages stay valid",
      'enum mode value off = 0 was renumbered to 1',
      'enum mode value on = 1 was renumbered to 0',
      "demo.p.move: new field speed must be optional and appended to a message, so older peers' messages stay valid",
      'demo.p.note: changed from a push by the client to a push by the server',
      'demo.p.note: field text changed from string(capacity 8) to string(capacity 16)',
    ]);
  });

  it('lets an optional pipe field be appended, but not change its end', () => {
    const withPipe = (end: string) =>
      base.replace(
        'capacity: 8 }]',
        `capacity: 8 }, { name: log, type: pipe, end: ${end}, optional: true }]`,
      );
    assert.deepEqual(problems(withPipe('producer')), []);
    const changed = checkCompatibility(
      loadIdlOrThrow(['/v2.yaml'], () => withPipe('producer')),
      loadIdlOrThrow(['/v3.yaml'], () => withPipe('consumer')),
    );
    assert.deepEqual(
      changed.map((p) => p.message),
      ['demo.p.note: field log changed from pipe(producer) to pipe(consumer)'],
    );
  });

  it('notices removed or renamed messages and changed ids', () => {
    assert.deepEqual(problems(base.replace('name: note', 'name: memo')), [
      'demo.p.note was removed or renamed; older peers still use it',
    ]);
    assert.match(
      problems(base.replace('name: move', 'name: move\n      id: 7'))[0]!,
      /type id changed from \d+ to 7/,
    );
  });

  it('ftl-ipc compat exits 1 with positions, 0 when compatible', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ftl-ipc-compat-'));
    try {
      writeFileSync(join(dir, 'v1.yaml'), base);
      writeFileSync(join(dir, 'v2.yaml'), base.replace('capacity: 8', 'capacity: 4'));
      let err = '';
      const io = { out: () => {}, err: (t: string) => (err += t) };
      assert.equal(
        await main(['compat', '--baseline', join(dir, 'v1.yaml'), join(dir, 'v2.yaml')], io),
        1,
      );
      assert.match(
        err,
        /v2\.yaml:12:66: error\[IDL_INCOMPATIBLE\]: demo\.p\.note: field text changed/,
      );
      assert.equal(
        await main(['compat', '--baseline', join(dir, 'v1.yaml'), join(dir, 'v1.yaml')], io),
        0,
      );
      assert.equal(await main(['compat', join(dir, 'v1.yaml')], io), 2);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
