import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Diagnostic, fnv1a32, formatDiagnostic, loadIdl } from '../../src/idl/index.js';

/** Loads IDL files from memory: `{ 'a.yaml': text }`, rooted at /idl. */
function load(files: Record<string, string>, roots = Object.keys(files).slice(0, 1)) {
  const read = (path: string) => {
    const text = files[path.replace(/^\/idl\//, '')];
    if (text === undefined) throw new Error('no such file');
    return text;
  };
  return loadIdl(
    roots.map((r) => `/idl/${r}`),
    read,
  );
}

/** `code@line:col` for each diagnostic, for compact assertions. */
const where = (ds: readonly Diagnostic[]) =>
  [...ds]
    .sort((a, b) => a.line - b.line || a.col - b.col)
    .map((d) => `${d.code}@${d.line}:${d.col}`);

describe('IDL errors', () => {
  it('a misspelt type is the one error, without follow-ons about the keys beside it', () => {
    const { diagnostics } = load({
      'a.yaml': [
        'name: kv',
        'protocols:',
        '  kv:',
        '    - name: get',
        '      type: call',
        '      params: [{ name: key, type: strin, capacity: 64 }]',
        '      returns: [{ name: values, type: arry, capacity: 4, items: { type: string } }]',
        '',
      ].join('\n'),
    });
    // Unsorted on purpose: the order the user reads them in.
    assert.deepEqual(
      diagnostics.map((d) => `${d.code}@${d.line}:${d.col}`),
      ['IDL_UNKNOWN_TYPE@6:35', 'IDL_UNKNOWN_TYPE@7:39'],
    );
  });

  it('reports every problem of a file at once, with positions', () => {
    const { diagnostics } = load({
      'a.yaml': [
        'name: demo',
        'colour: red',
        'structs:',
        '  point: [{ name: x, type: int33 }, { name: x, type: int32 }]',
        'protocols:',
        '  p:',
        '    - { name: m, type: push, origin: client, params: [{ name: s, type: string }] }',
        '    - { name: m, type: push, origin: client }',
        '    - { name: c, type: push, origin: server, params: [{ name: ch, type: channel, protocol: nowhere }] }',
        '',
      ].join('\n'),
    });
    assert.deepEqual(where(diagnostics), [
      'IDL_UNKNOWN_KEY@2:1',
      'IDL_UNKNOWN_TYPE@4:28',
      'IDL_DUPLICATE_NAME@4:45',
      'IDL_MISSING_CAPACITY@7:72',
      'IDL_DUPLICATE_NAME@8:15',
      'IDL_UNKNOWN_PROTOCOL@9:92',
    ]);
    const unknownType = diagnostics.find((d) => d.code === 'IDL_UNKNOWN_TYPE')!;
    assert.match(unknownType.message, /unknown type "int33"/);
    assert.match(formatDiagnostic(unknownType), /a\.yaml:4:28: error\[IDL_UNKNOWN_TYPE\]/);
    assert.match(unknownType.frame, /> 4 \| {3}point: \[\{ name: x, type: int33 \}/);
    assert.match(unknownType.frame, /\n\s+\|\s+\^{5}/);
  });

  it('points into JSON files too', () => {
    const { diagnostics } = load({
      'a.json':
        '{\n  "name": "demo",\n  "protocols": { "p": [ { "name": "m", "type": "call", "extra": 1 } ] }\n}\n',
    });
    assert.deepEqual(where(diagnostics), ['IDL_UNKNOWN_KEY@3:56']);
  });

  it('reports YAML syntax errors with their position', () => {
    const { diagnostics } = load({ 'a.yaml': 'name: demo\nprotocols: [\n' });
    assert.equal(diagnostics[0]?.code, 'IDL_SYNTAX');
    assert.equal(diagnostics[0]?.line, 3);
  });

  it('checks shapes and values', () => {
    const { diagnostics } = load({
      'a.yaml': [
        'name: demo',
        'protocols:',
        '  p:',
        '    - { name: m, type: send }',
        '    - { name: c, type: call, origin: server, returns: [{ name: n, type: uint8, capacity: 3 }] }',
        '    - { name: q, type: push }',
        '    - { name: r, type: push, origin: client, returns: [], id: -1 }',
        '',
      ].join('\n'),
    });
    assert.deepEqual(where(diagnostics), [
      'IDL_BAD_VALUE@4:24',
      'IDL_BAD_VALUE@5:38',
      'IDL_BAD_VALUE@5:90',
      'IDL_MISSING_KEY@6:9',
      'IDL_BAD_VALUE@7:46',
      'IDL_BAD_VALUE@7:63',
    ]);
    assert.deepEqual(where(load({ 'a.yaml': 'name: Demo\n' }).diagnostics), ['IDL_BAD_NAME@1:7']);
  });

  it('checks pipe fields: "end" is required, producer or consumer, and only for pipes', () => {
    const { diagnostics, packages } = load({
      'a.yaml': [
        'name: demo',
        'protocols:',
        '  p:',
        '    - name: m',
        '      type: push',
        '      origin: client',
        '      params:',
        '        - { name: a, type: pipe }',
        '        - { name: b, type: pipe, end: both }',
        '        - { name: c, type: channel, end: producer }',
        '        - { name: d, type: pipe, end: consumer, capacity: 4 }',
        '        - { name: e, type: array, capacity: 2, items: { type: pipe } }',
        '        - { name: f, type: array, capacity: 2, items: { type: pipe, end: producer } }',
        '',
      ].join('\n'),
    });
    assert.deepEqual(where(diagnostics), [
      'IDL_MISSING_KEY@8:28',
      'IDL_BAD_VALUE@9:39',
      'IDL_BAD_VALUE@10:42',
      'IDL_BAD_VALUE@11:59',
      'IDL_MISSING_KEY@12:63',
    ]);
    const messages = diagnostics.map((d) => d.message);
    assert.ok(
      messages.includes(
        'type "pipe" needs "end", the end that travels in the message: producer or consumer',
      ),
    );
    assert.ok(messages.includes('"end" must be one of producer, consumer, not "both"'));
    assert.ok(messages.includes('"end" applies to pipe, not to "channel"'));
    assert.match(formatDiagnostic(diagnostics[1]!), /a\.yaml:9:39: error\[IDL_BAD_VALUE\]/);
    const fields = packages[0]!.protocols[0]!.messages[0]!.params;
    assert.deepEqual(
      fields.map((f) => [f.name, f.type]),
      [
        ['c', { kind: 'channel', protocol: undefined }],
        ['d', { kind: 'pipe', end: 'consumer' }],
        ['f', { kind: 'array', capacity: 2, items: { kind: 'pipe', end: 'producer' } }],
      ],
    );
  });

  it('rejects id collisions, explicit or hashed, naming both places', () => {
    const hashed = fnv1a32('demo.p.a');
    const { diagnostics } = load({
      'a.yaml': `name: demo\nprotocols:\n  p:\n    - { name: a, type: push, origin: client }\n    - { name: b, type: push, origin: client, id: ${hashed} }\n`,
    });
    assert.deepEqual(where(diagnostics), ['IDL_ID_COLLISION@5:50']);
    assert.match(diagnostics[0]!.message, /collides with message demo\.p\.a at .*a\.yaml:4:15/);
  });

  it('resolves imports, and reports missing files, cycles and unknown references', () => {
    const { diagnostics, packages } = load({
      'a.yaml':
        'name: a\nimports: [b.yaml, missing.yaml]\nstructs:\n  s: [{ name: v, type: b.vec }, { name: w, type: c.vec }]\n',
      'b.yaml': 'name: b\nimports: [a.yaml]\nstructs:\n  vec: [{ name: z, type: float64 }]\n',
    });
    assert.deepEqual(
      where(diagnostics).sort(),
      ['IDL_IMPORT@2:11', 'IDL_IMPORT@2:19', 'IDL_UNKNOWN_TYPE@4:50'].sort(),
    );
    assert.equal(packages.find((p) => p.name === 'a')?.structs[0]?.fields[0]?.type.kind, 'struct');
  });

  it('rejects recursive structs and arrays of empty structs', () => {
    const { diagnostics } = load({
      'a.yaml': [
        'name: demo',
        'structs:',
        '  node: [{ name: next, type: array, capacity: 2, items: { type: node } }]',
        '  nothing: []',
        '  many: [{ name: n, type: array, capacity: 9, items: { type: nothing } }]',
        '',
      ].join('\n'),
    });
    assert.deepEqual(where(diagnostics), ['IDL_RECURSIVE_STRUCT@3:3']);
    const empty = load({
      'a.yaml':
        'name: demo\nstructs:\n  nothing: []\n  many: [{ name: n, type: array, capacity: 9, items: { type: nothing } }]\n',
    });
    assert.deepEqual(where(empty.diagnostics), ['IDL_BAD_VALUE@4:62']);
  });

  it('rejects names that would collide in generated code', () => {
    const { diagnostics } = load({
      'a.yaml': [
        'name: demo',
        'structs:',
        '  ping_reply: [{ name: v, type: int8 }]',
        '  promise: [{ name: v, type: int8 }]',
        'protocols:',
        '  p:',
        '    - { name: ping, type: call }',
        '    - { name: recv, type: push, origin: server }',
        '    - { name: a_b1, type: push, origin: client, params: [{ name: x_y1, type: int8 }, { name: x_y_1, type: int8 }] }',
        '',
      ].join('\n'),
    });
    // Promise shadows a built-in, PingReply is made twice, recv is a member, xY1 is made twice.
    assert.deepEqual(where(diagnostics), [
      'IDL_DUPLICATE_NAME@4:3',
      'IDL_DUPLICATE_NAME@7:15',
      'IDL_DUPLICATE_NAME@8:15',
      'IDL_DUPLICATE_NAME@9:94',
    ]);
  });

  it('keeps ids when messages are reordered or files are added', () => {
    const ids = (text: string, extra: Record<string, string> = {}) =>
      load({ 'a.yaml': text, ...extra }, [
        'a.yaml',
        ...Object.keys(extra),
      ]).packages[0]!.protocols[0]!.messages.map((m) => [m.name, m.id] as const);
    const one =
      'name: demo\nprotocols:\n  p:\n    - { name: a, type: push, origin: client }\n    - { name: b, type: call }\n';
    const two =
      'name: demo\nprotocols:\n  p:\n    - { name: b, type: call }\n    - { name: a, type: push, origin: client }\n';
    assert.deepEqual(new Map(ids(one)), new Map(ids(two)));
    assert.deepEqual(
      new Map(
        ids(one, {
          'z.yaml': 'name: other\nprotocols:\n  p: [{ name: a, type: push, origin: client }]\n',
        }),
      ),
      new Map(ids(one)),
    );
    assert.equal(new Map(ids(one)).get('a'), fnv1a32('demo.p.a'));
  });

  it('every problem of a file is reported in one pass, a bad package name and bad names among them', () => {
    const { diagnostics } = load({
      'a.yaml': [
        'name: Bad-Name',
        'structs:',
        '  Point: [{ name: X, type: int32 }, { name: tag, type: strng }]',
        'protocols:',
        '  work:',
        '    - name: Add',
        '      type: cal',
        '      params: [{ name: p, type: Point }, { name: q, type: uint17 }]',
        '      returns: [{ name: text, type: string }]',
        '    - name: ping',
        '      type: push',
        '      colour: red',
        '',
      ].join('\n'),
    });
    assert.deepEqual(where(diagnostics), [
      'IDL_BAD_NAME@1:7', // the package name
      'IDL_BAD_NAME@3:3', // a struct name
      'IDL_BAD_NAME@3:19', // a field name
      'IDL_UNKNOWN_TYPE@3:56', // in the struct with the bad name
      'IDL_BAD_NAME@6:13', // a message name
      'IDL_BAD_VALUE@7:13', // the message's type
      'IDL_UNKNOWN_TYPE@8:59', // in the message with the bad name and type
      'IDL_MISSING_CAPACITY@9:37',
      'IDL_MISSING_KEY@10:7',
      'IDL_UNKNOWN_KEY@12:7',
    ]);
  });

  it('a file with no name, a reserved name or a name another file has is checked through all the same', () => {
    const push = (type: string) =>
      `protocols:\n  p:\n    - { name: m, type: push, origin: client, params: [{ name: v, type: ${type} }] }\n`;
    assert.deepEqual(where(load({ 'a.yaml': push('nope') }).diagnostics), [
      'IDL_MISSING_KEY@1:1',
      'IDL_UNKNOWN_TYPE@3:72',
    ]);
    assert.deepEqual(where(load({ 'a.yaml': `name: value\n${push('nope')}` }).diagnostics), [
      'IDL_BAD_NAME@1:7',
      'IDL_UNKNOWN_TYPE@4:72',
    ]);
    const { diagnostics } = load({
      'a.yaml': `name: dup\nimports: [b.yaml]\n${push('nope')}`,
      'b.yaml': `name: dup\n${push('nada')}`,
    });
    assert.deepEqual(
      diagnostics.map((d) => `${d.file.replace(/.*\//, '')}:${d.code}@${d.line}:${d.col}`).sort(),
      [
        'a.yaml:IDL_UNKNOWN_TYPE@5:72',
        'b.yaml:IDL_DUPLICATE_NAME@1:7',
        'b.yaml:IDL_UNKNOWN_TYPE@4:72',
      ],
    );
  });

  it('a definition whose generated name is one generated code imports from ftl-ipc or ftl-ipc/wire is refused', () => {
    for (const name of ['call_context', 'message_table', 'channel']) {
      const { diagnostics } = load({
        'a.yaml': `name: demo\nstructs:\n  ${name}: [{ name: v, type: int32 }]\n`,
      });
      assert.deepEqual(
        diagnostics.map((d) => d.code),
        ['IDL_DUPLICATE_NAME'],
        `struct ${name}: ${diagnostics.map((d) => d.message).join('; ')}`,
      );
      assert.match(diagnostics[0]!.message, /which the runtime or an import already uses/);
    }
  });
});
