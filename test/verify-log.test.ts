// `auditgate verify-log` as an auditor runs it (a separate process, over HTTP) against the real
// service on SQLite and PostgreSQL: it passes on a healthy log and fails, naming the index or the
// rollback, after an attacker with database access changes an entry byte, a stored hash byte,
// deletes the last entry, or restores an older copy of the database.
import test from 'ava';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import knexFactory from 'knex';
import { DB_KINDS, PG_ADMIN_URL, type DbKind } from './helpers/db.ts';
import { sampleRecord, startLogService, type LogService } from './helpers/log-service.ts';
import type { Db } from '../server/db.ts';

const ROOT = resolve(fileURLToPath(import.meta.url), '../..');
const BIN = join(ROOT, 'bin/auditgate.mjs');

interface Run {
  code: number;
  out: string;
  err: string;
}

function cli(args: string[]): Promise<Run> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [BIN, 'verify-log', ...args],
      { cwd: ROOT, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' }, timeout: 60_000 },
      (err, out, errOut) => {
        const code = err
          ? typeof (err as { code?: unknown }).code === 'number'
            ? (err as { code: number }).code
            : -1
          : 0;
        done({ code, out, err: errOut });
      },
    );
  });
}

/** The one line for a check, e.g. line(run, 'root') → "PASS root: …". */
function line(r: Run, check: string): string {
  const found = r.out.split('\n').filter((l) => / /.test(l) && l.split(' ')[1] === `${check}:`);
  return found.join('\n');
}

async function grow(h: LogService, from: number, count: number, tag = 'test'): Promise<void> {
  await Promise.all(
    Array.from({ length: count }, (_, i) => h.service!.log.append(sampleRecord(from + i, tag))),
  );
  await h.service!.log.checkpoint();
}

async function vkeyOf(h: LogService): Promise<string> {
  return (await (await fetch(`${h.url}/log/vkey`)).text()).trim();
}

/** An attacker with database access: switches the append-only triggers off, then writes. */
async function asAttacker(h: LogService, kind: DbKind, act: (db: Db) => Promise<void>): Promise<void> {
  const db = h.tdb.reopen();
  if (kind === 'postgres') {
    await db.raw('ALTER TABLE log_entries DISABLE TRIGGER USER');
    await db.raw('ALTER TABLE log_state DISABLE TRIGGER USER');
    await db.raw('ALTER TABLE log_checkpoints DISABLE TRIGGER USER');
  } else {
    const triggers = await db('sqlite_master')
      .where({ type: 'trigger' })
      .whereIn('tbl_name', ['log_entries', 'log_state', 'log_checkpoints'])
      .pluck('name');
    for (const name of triggers) await db.raw(`DROP TRIGGER ${name}`);
  }
  await act(db);
  await db.destroy();
}

async function setup(kind: DbKind, t: { teardown(f: () => Promise<void>): void }, count = 20) {
  const h = await startLogService(kind);
  t.teardown(() => h.cleanup());
  await grow(h, 0, count);
  const vkey = await vkeyOf(h);
  const state = join(h.tdb.dir, 'verify-state.json');
  return { h, vkey, state };
}

for (const kind of DB_KINDS) {
  test(`${kind}: a healthy log passes, the state file is written and the next run proves growth`, async (t) => {
    const { h, vkey, state } = await setup(kind, t);
    const first = await cli(['--url', h.url, '--vkey', vkey, '--state', state, '--page-size', '3']);
    t.is(first.code, 0, first.out + first.err);
    for (const c of ['vkey', 'signature', 'entries', 'hashes', 'root']) t.regex(line(first, c), /^PASS /, c);
    t.regex(line(first, 'consistency'), /^SKIP /);
    t.notRegex(first.out, /FAIL/);
    const saved = JSON.parse(readFileSync(state, 'utf8'));
    t.is(saved.size, 20);
    t.is(saved.vkey, vkey);

    await grow(h, 20, 13);
    // No --vkey now: the state file carries the trusted key.
    const second = await cli(['--url', h.url, '--state', state, '--page-size', '4']);
    t.is(second.code, 0, second.out);
    t.regex(line(second, 'consistency'), /^PASS consistency: size 20 → 33/);
    t.regex(line(second, 'history'), /^PASS /);
    t.regex(line(second, 'root'), /^PASS /);
    t.is(JSON.parse(readFileSync(state, 'utf8')).size, 33);
  });

  test(`${kind}: one changed byte in an entry fails and names its index`, async (t) => {
    const { h, vkey, state } = await setup(kind, t);
    t.is((await cli(['--url', h.url, '--vkey', vkey, '--state', state])).code, 0);
    const before = readFileSync(state, 'utf8');
    await asAttacker(h, kind, async (db) => {
      const row = await db('log_entries').where({ idx: 13 }).first();
      const data = Buffer.from(row.data);
      const at = data.indexOf('"user-') + 6;
      data[at] = data[at] === 0x39 ? 0x30 : data[at]! + 1; // still canonical JSON, one digit differs
      await db('log_entries').where({ idx: 13 }).update({ data });
    });
    const r = await cli(['--url', h.url, '--state', state]);
    t.is(r.code, 1, r.out);
    t.regex(line(r, 'hashes'), /^FAIL hashes: first bad index 13: entry 13 hashes to /);
    t.regex(line(r, 'root'), /^FAIL root: .*first bad index 13/);
    t.regex(line(r, 'history'), /^FAIL history: the first 20 entries now hash to/);
    t.regex(line(r, 'entries'), /^PASS /);
    t.is(readFileSync(state, 'utf8'), before, 'a failed run must not move the trusted state');
  });

  test(`${kind}: one changed byte in a stored hash fails and names its index`, async (t) => {
    const { h, vkey, state } = await setup(kind, t);
    await asAttacker(h, kind, async (db) => {
      const row = await db('log_entries').where({ idx: 11 }).first();
      const hashes = Buffer.from(row.hashes);
      t.is(hashes.length, 3 * 32, 'leaf 11 closes two subtrees');
      hashes[2 * 32 + 5]! ^= 0x01; // the subtree of leaves 8..11
      await db('log_entries').where({ idx: 11 }).update({ hashes });
    });
    const r = await cli(['--url', h.url, '--vkey', vkey, '--state', state]);
    t.is(r.code, 1, r.out);
    t.regex(
      line(r, 'hashes'),
      /^FAIL hashes: first bad index 11: stored hash 2 of index 11 \(subtree of leaves 8\.\.11\)/,
    );
    // The entries are intact, so the signed root still comes out right: only the hash was forged.
    t.regex(line(r, 'root'), /^PASS /);
    t.false(existsSync(state), 'a failed first run must not create a state file');
  });

  test(`${kind}: a changed stored leaf hash fails and names its index`, async (t) => {
    const { h, vkey } = await setup(kind, t);
    await asAttacker(h, kind, async (db) => {
      const row = await db('log_entries').where({ idx: 4 }).first();
      const hashes = Buffer.from(row.hashes);
      hashes[0]! ^= 0x80;
      await db('log_entries').where({ idx: 4 }).update({ hashes });
    });
    const r = await cli(['--url', h.url, '--vkey', vkey]);
    t.is(r.code, 1, r.out);
    t.regex(
      line(r, 'hashes'),
      /^FAIL hashes: first bad index 4: entry 4 hashes to \S+ but the stored leaf hash is /,
    );
  });

  test(`${kind}: deleting the last entry is detected`, async (t) => {
    const { h, vkey, state } = await setup(kind, t);
    t.is((await cli(['--url', h.url, '--vkey', vkey, '--state', state])).code, 0);
    await asAttacker(h, kind, (db) => db('log_entries').where({ idx: 19 }).delete());
    const r = await cli(['--url', h.url, '--state', state]);
    t.is(r.code, 1, r.out);
    t.regex(line(r, 'entries'), /^FAIL entries: first bad index 19/);
    t.regex(line(r, 'root'), /^FAIL root: only 19 of 20 entries could be read.*first bad index 19/);
  });

  test(`${kind}: restoring an older copy of the database is caught as a rollback, then as a fork`, async (t) => {
    const { h, vkey, state } = await setup(kind, t, 10);
    // The attacker's "backup" at size 10.
    await h.stop();
    const restore = await snapshot(h, kind);
    t.teardown(() => restore.drop());
    await h.start();
    await grow(h, 10, 10);
    t.is((await cli(['--url', h.url, '--vkey', vkey, '--state', state])).code, 0);

    await h.stop();
    await restore.restore();
    await h.start();
    t.is((await h.service!.log.head()).size, 10);
    const rolled = await cli(['--url', h.url, '--state', state]);
    t.is(rolled.code, 1, rolled.out);
    t.regex(
      line(rolled, 'consistency'),
      /^FAIL consistency: rollback: the checkpoint has size 10 but size 20 was verified before/,
    );

    // The restored log grows again with different entries: a fork of what was verified.
    await grow(h, 10, 15, 'forked');
    const forked = await cli(['--url', h.url, '--state', state]);
    t.is(forked.code, 1, forked.out);
    t.regex(line(forked, 'consistency'), /^FAIL consistency: size 20 → 25: the proof does not verify/);
    t.regex(line(forked, 'history'), /^FAIL history: the first 20 entries now hash to/);
    t.regex(
      line(forked, 'root'),
      /^PASS /,
      'the forked log is internally consistent; only the state file catches it',
    );
    t.is(JSON.parse(readFileSync(state, 'utf8')).size, 20);
  });

  test(`${kind}: a wrong key or another log's checkpoint fails the signature`, async (t) => {
    const { h, vkey, state } = await setup(kind, t, 5);
    const other = await startLogService(kind);
    t.teardown(() => other.cleanup());
    await grow(other, 0, 5);

    // Same name, another key (the id and key bytes are right for that other key).
    const pub = generateKeyPairSync('ed25519').publicKey.export({ format: 'der', type: 'spki' }).subarray(12);
    const id = createHash('sha256')
      .update(Buffer.concat([Buffer.from(h.origin), Buffer.from([0x0a, 0x01]), pub]))
      .digest();
    const wrong = `${h.origin}+${id.subarray(0, 4).toString('hex')}+${Buffer.concat([Buffer.from([1]), pub]).toString('base64')}`;
    const r1 = await cli(['--url', h.url, '--vkey', wrong]);
    t.is(r1.code, 1, r1.out);
    t.regex(line(r1, 'signature'), /^FAIL signature: checkpoint rejected/);

    // Our key against the other log (another origin and key).
    const r2 = await cli(['--url', other.url, '--vkey', vkey]);
    t.is(r2.code, 1, r2.out);
    t.regex(line(r2, 'signature'), /^FAIL signature/);

    // A state file from our log, pointed at the other log.
    t.is((await cli(['--url', h.url, '--vkey', vkey, '--state', state])).code, 0);
    const r3 = await cli(['--url', other.url, '--state', state]);
    t.is(r3.code, 1, r3.out);
    t.regex(line(r3, 'signature'), /^FAIL signature/);
    // The other log's own key, with our state file: a different log, refused before anything else.
    const r4 = await cli(['--url', other.url, '--vkey', await vkeyOf(other), '--state', state]);
    t.is(r4.code, 1, r4.out);
    t.regex(line(r4, 'vkey'), /^FAIL vkey: .*not the key remembered in the state file/);
  });

  test(`${kind}: a checkpoint forged in the database (body changed, signature kept) fails the signature`, async (t) => {
    const { h, vkey } = await setup(kind, t, 6);
    await asAttacker(h, kind, async (db) => {
      const row = await db('log_checkpoints').orderBy('size', 'desc').first();
      const [origin, size, root, ...rest] = String(row.note).split('\n');
      const forgedRoot = Buffer.from(root!, 'base64');
      forgedRoot[0]! ^= 0x01;
      const note = [origin, size, forgedRoot.toString('base64'), ...rest].join('\n');
      await db('log_checkpoints').where({ size: row.size }).update({ note });
    });
    const served = await (await fetch(`${h.url}/log/checkpoint`)).text();
    t.true(served.includes(`\u2014 ${h.origin} `), 'the forged note still carries our key id');
    const r = await cli(['--url', h.url, '--vkey', vkey]);
    t.is(r.code, 1, r.out);
    t.regex(line(r, 'signature'), /^FAIL signature: checkpoint rejected: invalid signature/);
  });

  test(`${kind}: without a trusted key it warns loudly about trust on first use`, async (t) => {
    const { h, vkey, state } = await setup(kind, t, 3);
    const r = await cli(['--url', h.url, '--state', state]);
    t.is(r.code, 0, r.out);
    t.regex(line(r, 'vkey'), /^WARN vkey: .*trust on first use/);
    t.is(JSON.parse(readFileSync(state, 'utf8')).vkey, vkey, 'the first key seen is pinned');
  });
}

test('usage errors exit 2; an unreachable server and a corrupt state file exit 1', async (t) => {
  for (const args of [
    ['--bogus'],
    ['--url', 'ftp://127.0.0.1/'],
    ['--url', 'not a url'],
    ['--page-size', '0'],
    ['--page-size', '10001'],
    ['--vkey', '/nonexistent/dir/key'],
    ['extra'],
  ]) {
    const r = await cli(args);
    t.is(r.code, 2, `${args.join(' ')}: ${r.out}${r.err}`);
    t.regex(r.err, /Usage: auditgate verify-log/);
  }
  // A port nobody listens on (bound then closed).
  const { createServer } = await import('node:net');
  const port = await new Promise<number>((done) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => done(p));
    });
  });
  const down = await cli(['--url', `http://127.0.0.1:${port}`, '--vkey', 'a+00000000+AQ==']);
  t.is(down.code, 2, 'a malformed key is a usage error');
  const dir = mkdtempSync(join(tmpdir(), 'auditgate-verify-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const bad = join(dir, 'state.json');
  writeFileSync(bad, '{"not":"state"}');
  const r = await cli(['--url', `http://127.0.0.1:${port}`, '--state', bad]);
  t.is(r.code, 1);
  t.regex(r.out, /^FAIL state: cannot use /m);
  const r2 = await cli(['--url', `http://127.0.0.1:${port}`]);
  t.is(r2.code, 1);
  t.regex(line(r2, 'vkey'), /^FAIL vkey: GET http:\/\/127\.0\.0\.1:\d+\/log\/vkey: /);
});

/** Takes a copy of the stopped service's database; restore() puts it back over the live one. */
async function snapshot(
  h: LogService,
  kind: DbKind,
): Promise<{ restore(): Promise<void>; drop(): Promise<void> }> {
  if (kind === 'sqlite') {
    const file = h.tdb.sqliteFile!;
    const copy = `${file}.backup`;
    for (const ext of ['', '-wal']) if (existsSync(file + ext)) copyFileSync(file + ext, copy + ext);
    return {
      async restore() {
        for (const ext of ['-wal', '-shm']) rmSync(file + ext, { force: true });
        for (const ext of ['', '-wal']) if (existsSync(copy + ext)) copyFileSync(copy + ext, file + ext);
      },
      async drop() {},
    };
  }
  const live = new URL(h.tdb.databaseUrl!).pathname.slice(1);
  const snap = `${live}_snap`;
  const admin = () => knexFactory({ client: 'pg', connection: PG_ADMIN_URL });
  const a = admin();
  try {
    await a.raw(`CREATE DATABASE ${snap} TEMPLATE ${live}`);
  } finally {
    await a.destroy();
  }
  return {
    async restore() {
      const b = admin();
      try {
        await b.raw(`DROP DATABASE ${live} WITH (FORCE)`);
        await b.raw(`CREATE DATABASE ${live} TEMPLATE ${snap}`);
      } finally {
        await b.destroy();
      }
    },
    async drop() {
      const c = admin();
      try {
        await c.raw(`DROP DATABASE IF EXISTS ${snap} WITH (FORCE)`);
      } finally {
        await c.destroy();
      }
    },
  };
}
