// scanJsonText: duplicate member names, numbers out of a double's range and nesting too deep
// in text that JSON.parse accepts — what a record could not hold as the one meaning of a message.
import test from 'ava';
import { MAX_JSON_DEPTH, scanJsonText } from '../gateway/json-text.ts';

const jsonTextProblem = (text: string) => scanJsonText(text).problem;
import { parseBody } from '../gateway/jsonrpc.ts';
import { createRecordBuilder } from '../gateway/record.ts';

const rule = (text: string) => {
  JSON.parse(text); // every case is valid JSON
  return jsonTextProblem(text)?.rule;
};

test('duplicate member names, however they are spelled, and only within one object', (t) => {
  t.is(rule('{"a":1,"a":2}'), 'duplicate-key');
  t.is(rule('{"name":"safe","params":{},"name":"danger"}'), 'duplicate-key');
  t.is(rule('{"a":1,"\\u0061":2}'), 'duplicate-key', 'an escape spells the same name');
  t.is(rule('{"x":{"y":[{"k":1,"k":1}]}}'), 'duplicate-key', 'deep inside');
  t.is(rule('{"a":1,"b":{"a":2}}'), undefined, 'the same name in a nested object');
  t.is(rule('[{"a":1},{"a":1}]'), undefined, 'the same name in sibling objects');
  t.is(rule('{"a":"{\\"a\\":1,\\"a\\":2}"}'), undefined, 'names inside a string value');
  t.is(rule('{"k\\"":1,"k":2}'), undefined, 'an escaped quote inside a name');
  t.is(rule('{"x":"\\\\","x":1}'), 'duplicate-key', 'a string ending in an escaped backslash');
  t.is(rule('{"a":[1,"a",{"b":"a"}],"b":"a"}'), undefined, 'strings that are values');
  t.is(rule(' { "a" : 1 , "b" : 2 , "a" : 3 } '), 'duplicate-key', 'whitespace');
  t.is(rule('{"":1,"":2}'), 'duplicate-key', 'the empty name');
  t.regex(jsonTextProblem('{"id":1,"id":2}')!.message, /duplicate member name "id"/);
});

test('numbers outside a double', (t) => {
  t.is(rule('{"n":1e400}'), 'number');
  t.is(rule('[-1E+400]'), 'number');
  t.is(rule(`[${'9'.repeat(400)}]`), 'number', 'an integer of 400 digits');
  t.is(rule('[1e308, -1.7976931348623157e308, 1e-400, 0.0, -0]'), undefined, 'large, tiny and zero are fine');
  t.is(rule(`[${'9'.repeat(300)}, 12345678901234567890]`), undefined, 'long but finite');
  t.regex(jsonTextProblem('{"n":1e400}')!.message, /number 1e400 is out of range/);
});

test('nesting: the limit passes, one more level does not', (t) => {
  const arrays = (d: number) => '['.repeat(d) + ']'.repeat(d);
  t.is(rule(arrays(MAX_JSON_DEPTH)), undefined);
  t.is(rule(arrays(MAX_JSON_DEPTH + 1)), 'depth');
  const objects = (d: number) => '{"a":'.repeat(d - 1) + '{}' + '}'.repeat(d - 1);
  t.is(rule(objects(MAX_JSON_DEPTH)), undefined);
  t.is(rule(objects(MAX_JSON_DEPTH + 1)), 'depth');
  t.is(rule(arrays(100_000)), 'depth', 'deep enough to overflow a recursive walk');
  t.is(rule(`[${arrays(MAX_JSON_DEPTH - 1)},${arrays(MAX_JSON_DEPTH - 1)}]`), undefined, 'siblings do not add up');
});

test('whatever JSON.stringify makes (no duplicates possible) passes, in any layout', (t) => {
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const names = ['a', 'b', 'é', '"q"', '\\', 'x\ny', '\u2028', '{', '}', ',', ':', '[', ']', ''];
  const value = (depth: number): unknown => {
    const r = rnd();
    if (depth > 6 || r < 0.3) return [1.5e300, -0.25, 'str"ing', true, null, '\\', ',]}'][Math.floor(rnd() * 7)];
    if (r < 0.6) return Array.from({ length: Math.floor(rnd() * 4) }, () => value(depth + 1));
    const o: Record<string, unknown> = {};
    for (let i = Math.floor(rnd() * 5); i > 0; i--) o[names[Math.floor(rnd() * names.length)]!] = value(depth + 1);
    return o;
  };
  for (let i = 0; i < 2_000; i++) {
    const v = value(0);
    for (const indent of [undefined, 2]) t.is(jsonTextProblem(JSON.stringify(v, null, indent)), undefined);
    // Repeating one member of an object is always found.
    const text = JSON.stringify({ ...(typeof v === 'object' && v && !Array.isArray(v) ? v : {}), dup: v });
    t.is(jsonTextProblem(`${text.slice(0, -1)},"dup":0}`)?.rule, 'duplicate-key');
  }
});

test('integers a double cannot hold exactly are found, and their records keep the text', (t) => {
  t.is(scanJsonText('{"id":12345678901234567890}').inexactInteger, '12345678901234567890');
  t.is(scanJsonText('[-9007199254740993, 1]').inexactInteger, '-9007199254740993');
  t.deepEqual(scanJsonText('[9007199254740991, -9007199254740991, 1.2345678901234567890, 1e20, "12345678901234567890"]'), {});
  t.is(scanJsonText('{"a":12345678901234567890,"a":1}').problem?.rule, 'duplicate-key', 'a problem still refuses');

  const text = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"n":12345678901234567891}}}';
  const [m] = parseBody(Buffer.from(text)).messages;
  t.is(m!.exactText, text);
  const ctx = { target: 'x', transport: 'http' as const };
  const plain = createRecordBuilder({ instance: 'i', version: '0' });
  t.is(plain({ event: 'mcp.message', direction: 'client_to_upstream', message: m! }, ctx).detail?.exact_text, text);
  // Masking: the raw text would carry the unmasked value, so it is not kept.
  const masking = createRecordBuilder({ instance: 'i', version: '0', mask: () => ({ body: { masked: true }, masked: ['/params'] }) });
  t.is(masking({ event: 'mcp.message', direction: 'client_to_upstream', message: m! }, ctx).detail, undefined);
  const [small] = parseBody(Buffer.from('{"jsonrpc":"2.0","id":1,"method":"ping"}')).messages;
  t.is(small!.exactText, undefined);
});
