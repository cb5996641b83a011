// Record timestamps: microseconds that are real and never go backwards within the process (the
// earlier clock padded milliseconds with an unrelated counter, so records of one millisecond
// could carry times out of order: a response before its request).
import test from 'ava';
import { auditClockMicros, auditTimestamp } from '../gateway/audit-record.ts';

const STAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;

function micros(stamp: string): number {
  return Date.parse(`${stamp.slice(0, 23)}Z`) * 1000 + Number(stamp.slice(23, 26));
}

function spin(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

test('consecutive timestamps never go backwards and carry real sub-millisecond digits', (t) => {
  let prev = auditTimestamp();
  let backwards = 0;
  const subMs = new Set<string>();
  for (let i = 0; i < 200_000; i++) {
    const s = auditTimestamp();
    if (s < prev) backwards++;
    subMs.add(s.slice(23, 26));
    prev = s;
  }
  t.regex(prev, STAMP);
  t.is(backwards, 0);
  // 200,000 stamps span several milliseconds: their last three digits take many values.
  t.true(subMs.size > 100, `only ${subMs.size} distinct sub-millisecond values`);
});

test('the clock measures elapsed time in microseconds and stays on the wall clock', (t) => {
  for (const gap of [0.3, 2, 7]) {
    // Bracket each reading with the monotonic clock, so preemption cannot make the check flaky.
    const p0 = performance.now();
    const a = micros(auditTimestamp());
    const p1 = performance.now();
    spin(gap);
    const p2 = performance.now();
    const b = micros(auditTimestamp());
    const p3 = performance.now();
    // Elapsed time to the microsecond, give or take the millisecond a resync (once a second) may move it.
    const low = Math.floor((p2 - p1) * 1000) - 1_001;
    const high = Math.ceil((p3 - p0) * 1000) + 1_001;
    t.true(b - a >= low && b - a <= high, `${gap} ms: ${b - a} µs, expected ${low}–${high}`);
  }
  const wall = Date.now() * 1000;
  t.true(Math.abs(auditClockMicros() - wall) < 5_000);
  // Across a resync (once a second) too.
  spin(1_050);
  t.true(Math.abs(micros(auditTimestamp()) - Date.now() * 1000) < 5_000);
});

test('the check against the wall clock (once a second) keeps the sub-millisecond digits real', (t) => {
  // A clock re-anchored to Date.now(), which has whole milliseconds, stamps ".xxx000" right after
  // each check. Four checks: a real clock ends in 000 about once in a thousand stamps.
  const after: string[] = [];
  for (let i = 0; i < 4; i++) {
    spin(1_050);
    after.push(auditTimestamp().slice(23, 26));
  }
  t.true(after.filter((d) => d === '000').length <= 1, after.join(' '));
});

test('a step of the system clock is followed; a step back of less than a second holds the clock', (t) => {
  const realNow = Date.now;
  const near = (us: number, ms: number) => Math.abs(us - ms * 1000) < 5_000;
  try {
    // Stepped forward 10 s: followed at the next check (once a second).
    Date.now = () => realNow() + 10_000;
    spin(1_050);
    const ahead = micros(auditTimestamp());
    t.true(near(ahead, realNow() + 10_000), 'follows a step forward');
    // Back by 2 s, 1.05 s later: the clock would go back 0.95 s, so it holds instead.
    Date.now = () => realNow() + 8_000;
    spin(1_050);
    t.is(micros(auditTimestamp()), ahead, 'holds');
    // Back by 8 s more: a real correction of the system clock, followed.
    Date.now = realNow;
    spin(1_050);
    t.true(near(micros(auditTimestamp()), realNow()), 'follows a step back of more than a second');
  } finally {
    Date.now = realNow;
  }
});

test('a given instant formats exactly, with the given sub-millisecond digits', (t) => {
  const at = new Date('2026-11-25T17:18:24.123Z');
  t.is(auditTimestamp(at), '2026-11-25T17:18:24.123000Z');
  t.is(auditTimestamp(at, 7), '2026-11-25T17:18:24.123007Z');
  t.is(auditTimestamp(at, 456), '2026-11-25T17:18:24.123456Z');
});
