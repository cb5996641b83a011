// The verifier's in-place tree arithmetic (server/evidence/record-check.ts) against merkle.ts's
// Frontier: equal roots for every start size up to 130 and up to 70 appended leaves, and the
// NDJSON reader gives the same answer however the bytes are split into chunks.
import test from 'ava';
import { createHash } from 'node:crypto';
import { Frontier, leafHash } from '../server/audit/merkle.ts';
import { CompactRange, RecordChecker } from '../server/evidence/record-check.ts';

const leaf = (i: number) => leafHash(Buffer.from(`{"n":${i}}`));

test('CompactRange equals Frontier for every start size ≤ 130 and up to 70 appended leaves', (t) => {
  let checked = 0;
  for (let start = 0; start <= 130; start++) {
    const f = new Frontier();
    for (let i = 0; i < start; i++) f.append(leaf(i));
    const c = new CompactRange(start, f.hashes());
    t.true(c.root().equals(f.root()));
    for (let i = start; i < start + 70; i++) {
      f.append(leaf(i));
      c.appendLeafHash(leaf(i));
      if (!c.root().equals(f.root())) t.fail(`start ${start}, size ${c.size}`);
      checked++;
    }
  }
  t.is(checked, 131 * 70);
  t.throws(() => new CompactRange(5, []), { message: /has 2 maximal subtrees/ });
});

function ndjson(from: number, n: number): Buffer {
  return Buffer.from(Array.from({ length: n }, (_, i) => `{"n":${from + i}}\n`).join(''));
}

test('RecordChecker: any chunking gives the same leaves; the input bytes are left as they were', (t) => {
  const start = 37;
  const f = new Frontier();
  for (let i = 0; i < start; i++) f.append(leaf(i));
  const startHashes = f.hashes();
  const data = ndjson(start, 100);
  const copy = Buffer.from(data);
  for (let i = start; i < start + 100; i++) f.append(leaf(i));
  for (const size of [1, 2, 3, 7, 16, 64, 1000, data.length]) {
    const rc = new RecordChecker();
    rc.watch([start + 50, start + 100]);
    // The start state may arrive after some records (a reordered archive): they are replayed.
    rc.write(data.subarray(0, Math.min(size, data.length)));
    rc.start(start, startHashes);
    for (let p = Math.min(size, data.length); p < data.length; p += size) rc.write(data.subarray(p, p + size));
    const r = rc.result();
    t.is(r.count, 100, `chunk ${size}`);
    t.deepEqual(r.problems, []);
    t.true(r.endRoot!.equals(f.root()), `chunk ${size}`);
    t.is(r.rootsAt.size, 2);
    t.is(r.firstIndex, start);
  }
  t.true(data.equals(copy), 'the prefix byte borrowed from the newline is restored');
});

test('RecordChecker: an empty line and a missing final newline are named; a watched size already passed is reported', (t) => {
  const rc = new RecordChecker();
  rc.start(0, []);
  rc.write(Buffer.from('{"a":1}\n\n{"b":2}'));
  rc.watch([1]);
  const r = rc.result();
  t.is(r.count, 3);
  t.deepEqual(r.problems, ['line 2 is empty', 'line 3: the records file does not end with a newline']);
  t.deepEqual(r.missedSizes, [1]);
  const f = new Frontier();
  for (const l of ['{"a":1}', '', '{"b":2}']) f.append(createHash('sha256').update(Buffer.from([0])).update(l).digest());
  t.true(r.endRoot!.equals(f.root()));
});
