import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { run } from '../../src/cli/run.js';
import { formatSpecDiagnostic, parseSystemSpec } from '../../src/index.js';
import { fixture, root } from './helpers.js';

const file = `${root}examples/ping/system.yaml`;

describe('system spec', () => {
  it('resolves providers, modules and defaults', () => {
    const { spec, diagnostics } = parseSystemSpec(
      `services:
  - name: server
    module: ./server.ts
    provides: [ping]
  - name: client
    module: ./client.ts
    isolation: process
    depends: [{ name: pinger, protocol: ping, capacity: 4 }]
    restart: on-failure
    config: { count: 2, nested: [1, 2] }
`,
      file,
    );
    assert.deepEqual(diagnostics, []);
    assert.ok(spec);
    assert.equal(spec.name, 'system');
    assert.equal(spec.graceMs, 5000);
    const [server, client] = spec.services;
    assert.equal(server?.isolation, 'thread');
    assert.match(server?.module ?? '', /dist\/examples\/ping\/server\.js$/);
    assert.deepEqual(server?.restart, { policy: 'never' });
    assert.deepEqual(client?.depends, [
      { name: 'pinger', protocol: 'ping', service: 'server', capacity: 4 },
    ]);
    assert.deepEqual(client?.restart, {
      policy: 'on-failure',
      limit: 5,
      backoffMs: 100,
      maxBackoffMs: 5000,
    });
    assert.deepEqual(client?.config, { count: 2, nested: [1, 2] });
  });

  it('reports every problem, in file order, with position and code frame', () => {
    const { spec, diagnostics } = parseSystemSpec(
      `name: demo
services:
  - name: server
    module: ./nope.js
    isolation: threads
    provides: [ping]
  - name: client
    module: ./client.ts
    depends:
      - { name: ping, protocol: pong, capacity: 0 }
    restart: { policy: on-failure, limt: 3 }
    colour: blue
  - name: server
    module: ./server.ts
    provides: [ping]
`,
      file,
    );
    assert.equal(spec, undefined);
    assert.deepEqual(
      diagnostics.map((d) => `${d.line}:${d.col} ${d.code}`),
      [
        '4:13 SPEC_MODULE_NOT_FOUND',
        '5:16 SPEC_BAD_VALUE',
        '10:9 SPEC_UNKNOWN_PROTOCOL',
        '10:49 SPEC_BAD_VALUE',
        '11:36 SPEC_UNKNOWN_KEY',
        '12:5 SPEC_UNKNOWN_KEY',
        '13:11 SPEC_DUPLICATE_NAME',
      ],
    );
    assert.equal(
      formatSpecDiagnostic(diagnostics[1]!),
      `${file}:5:16: error[SPEC_BAD_VALUE]: "isolation" must be one of "thread", "process"; got "threads"
  4 |     module: ./nope.js
> 5 |     isolation: threads
    |                ^^^^^^^
  6 |     provides: [ping]
`,
    );
  });

  it('checks JSON with positions, and ambiguous providers', () => {
    const json = JSON.stringify(
      {
        services: [
          { name: 'a', module: './server.ts', provides: ['ping'] },
          { name: 'b', module: './server.ts', provides: ['ping'] },
          { name: 'c', module: './client.ts', depends: [{ name: 'ping', protocol: 'ping' }] },
        ],
      },
      null,
      2,
    );
    const { diagnostics } = parseSystemSpec(json, file.replace('.yaml', '.json'));
    assert.equal(diagnostics.length, 1);
    assert.equal(diagnostics[0]?.code, 'SPEC_AMBIGUOUS_PROVIDER');
    // The dependency object of service c, on the line its opening brace is.
    assert.equal(json.split('\n')[(diagnostics[0]?.line ?? 0) - 1]?.trim(), '{');
    assert.equal(diagnostics[0]?.line, 21);
    const fixed = json.replace('"protocol": "ping"', '"protocol": "ping", "service": "b"');
    const { spec } = parseSystemSpec(fixed, file);
    assert.equal(spec?.services[2]?.depends[0]?.service, 'b');
  });

  it('reports syntax errors and a missing services list', () => {
    const syntax = parseSystemSpec('services: [\n  { name: a', file).diagnostics;
    assert.equal(syntax[0]?.code, 'SPEC_SYNTAX');
    const empty = parseSystemSpec('name: x\n', file).diagnostics;
    assert.deepEqual(
      empty.map((d) => [d.code, d.line, d.col]),
      [['SPEC_MISSING_KEY', 1, 1]],
    );
  });

  it('ftl-ipc run prints every problem and exits 1 without starting anything', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'ftl-spec-'));
    const bad = join(dir, 'bad.yaml');
    await writeFile(
      bad,
      `services:\n  - name: a\n    module: ${fixture('fail')}\n    isolation: fork\n    restart: sometimes\n`,
    );
    const err: string[] = [];
    const io = { out: () => {}, err: (t: string) => err.push(t) };
    assert.equal(await run([bad], io), 1);
    const text = err.join('');
    assert.match(text, new RegExp(`${bad}:4:16: error\\[SPEC_BAD_VALUE\\]`));
    assert.match(text, new RegExp(`${bad}:5:14: error\\[SPEC_BAD_VALUE\\]`));
    assert.match(text, /2 problem\(s\) in .*nothing was started/);
    assert.equal(await run([join(dir, 'missing.yaml')], io), 1);
    await assert.rejects(run([], io), { name: 'UsageError' });
    await rm(dir, { recursive: true });
  });
});

describe('system spec module paths', () => {
  /** A project in a temporary folder: `files` by relative path, then the spec's modules. */
  async function project(files: Record<string, string>, spec: string) {
    const dir = await mkdtemp(join(tmpdir(), 'ftl-layout-'));
    for (const [path, text] of Object.entries(files)) {
      await mkdir(dirname(join(dir, path)), { recursive: true });
      await writeFile(join(dir, path), text);
    }
    const parsed = parseSystemSpec(spec, join(dir, 'src/system.yaml'));
    return { dir, ...parsed, done: () => rm(dir, { recursive: true }) };
  }
  const kv = 'services:\n  - { name: kv, module: ./kvservice.ts }\n';

  it('finds a .ts module compiled by the rootDir/outDir of the nearest tsconfig.json', async () => {
    const { dir, spec, diagnostics, done } = await project(
      {
        'package.json': '{}',
        // tsconfig.json allows comments and trailing commas.
        'tsconfig.json':
          '{\n  // the common layout\n  "compilerOptions": { "rootDir": "src", "outDir": "build", /* not dist */ },\n}\n',
        'src/kvservice.ts': '',
        'build/kvservice.js': '',
      },
      kv,
    );
    assert.deepEqual(diagnostics, []);
    assert.equal(spec?.services[0]?.module, join(dir, 'build/kvservice.js'));
    await done();
  });

  it('follows extends, and without rootDir takes the sources folder as tsc does', async () => {
    const { dir, spec, diagnostics, done } = await project(
      {
        'tsconfig.base.json': '{ "compilerOptions": { "outDir": "out" } }',
        'tsconfig.json': '{ "extends": "./tsconfig.base.json", "include": ["src"] }',
        'src/kvservice.ts': '',
        'out/kvservice.js': '',
      },
      kv,
    );
    assert.deepEqual(diagnostics, []);
    assert.equal(spec?.services[0]?.module, join(dir, 'out/kvservice.js'));
    await done();
  });

  it('SPEC_MODULE_NOT_FOUND lists every path it tried', async () => {
    const { dir, diagnostics, done } = await project(
      {
        'package.json': '{}',
        'tsconfig.json': '{ "compilerOptions": { "rootDir": "src", "outDir": "build" } }',
        'src/kvservice.ts': '',
      },
      kv,
    );
    assert.deepEqual(
      diagnostics.map((d) => d.code),
      ['SPEC_MODULE_NOT_FOUND'],
    );
    const message = diagnostics[0]!.message;
    for (const path of ['src/kvservice.js', 'build/kvservice.js', 'dist/src/kvservice.js']) {
      assert.ok(message.includes(join(dir, path)), `${path} is not in: ${message}`);
    }
    assert.match(message, /relative to the spec's folder.*build it$/);
    await done();
  });
});
