// Evidence bundles: the format checks out with the auditor's own tools (sha256sum, ssh-keygen,
// openssl) and with our verifier, the archive is byte-for-byte reproducible, and every kind of
// tampering is caught — including by an insider who holds the evidence key and re-signs the
// manifest, where only the log's own signed checkpoints can expose a removed or moved record.
import test, { type ExecutionContext } from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import { sign } from 'node:crypto';
import { appendFileSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import {
  MemoryLog,
  evidenceKeys,
  fillLog,
  fixtureBundle,
  fixtureBundleInput,
  sha256,
  tempDir,
  type EvidenceKeys,
} from './helpers/evidence-fixture.ts';
import { buildBundle } from '../reports/evidence/bundle.ts';
import { writeDeterministicTarGz } from '../reports/evidence/deterministic-tar.ts';
import { DEFAULT_NAMESPACE, PATHS, isManifestFile } from '../reports/evidence/layout.ts';
import { formatManifest } from '../reports/evidence/manifest.ts';
import { openSshPublicKeyLine, sshsigSign } from '../reports/evidence/sshsig.ts';
import { verifyBundle, type VerifyBundleOptions, type VerifyBundleResult } from '../server/evidence/verify.ts';

const PRINCIPAL = 'evidence@auditgate.test';

function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else out.push(relative(dir, join(d, e.name)).split(sep).join('/'));
    }
  };
  walk(dir);
  return out.sort();
}

function extract(archive: string, dir: string): string {
  mkdirSync(dir, { recursive: true });
  execFileSync('tar', ['-xzf', archive, '-C', dir, '-m']);
  return dir;
}

async function repack(dir: string, out: string): Promise<string> {
  await writeDeterministicTarGz(
    listFiles(dir).map((p) => ({ path: p, content: readFileSync(join(dir, p)) })),
    out,
    { mtime: new Date('2026-11-01T00:00:00Z') },
  );
  return out;
}

/** What an insider holding the evidence key would do after editing files: re-hash and re-sign. */
function resign(dir: string, keys: { privateKey: EvidenceKeys['privateKey'] }): void {
  const lines = listFiles(dir)
    .filter((p) => !isManifestFile(p))
    .map((p) => ({ path: p, sha256: sha256(readFileSync(join(dir, p))) }));
  const manifest = Buffer.from(formatManifest(lines));
  writeFileSync(join(dir, PATHS.manifest), manifest);
  writeFileSync(join(dir, PATHS.manifestSig), sshsigSign(manifest, keys.privateKey, DEFAULT_NAMESPACE));
  writeFileSync(join(dir, PATHS.manifestSigBin), sign(null, manifest, keys.privateKey));
}

function statusOf(r: VerifyBundleResult, check: string): string | undefined {
  return r.lines.find((l) => l.check === check)?.status;
}

function detailOf(r: VerifyBundleResult, check: string): string {
  return r.lines.find((l) => l.check === check)?.detail ?? '';
}

function failed(r: VerifyBundleResult): string[] {
  return r.lines.filter((l) => l.status === 'FAIL').map((l) => l.check);
}

interface Fixture {
  dir: string;
  log: MemoryLog;
  keys: EvidenceKeys;
  archive: string;
  opts: VerifyBundleOptions;
}

async function fixture(t: ExecutionContext, n = 1000, from = 300, to = 777, within = [400, 512, 700]): Promise<Fixture> {
  const dir = tempDir(t);
  const log = new MemoryLog('auditgate.test/log');
  fillLog(log, n);
  const keys = evidenceKeys();
  const archive = join(dir, 'bundle.tar.gz');
  await fixtureBundle({ log, keys, from, to, out: archive, within });
  return { dir, log, keys, archive, opts: { vkey: log.vkey, signerKey: keys.publicKey } };
}

test('a bundle verifies with our verifier: every check passes, nothing skipped but the absent reports', async (t) => {
  const f = await fixture(t);
  const r = await verifyBundle(f.archive, f.opts);
  t.true(r.ok, JSON.stringify(r.lines, null, 1));
  t.deepEqual(failed(r), []);
  t.is(r.records, 477);
  t.deepEqual(
    r.lines.filter((l) => l.status !== 'PASS').map((l) => `${l.status} ${l.check}`),
    ['SKIP reports'],
  );
  for (const check of ['manifest', 'manifest signature', 'manifest raw signature', 'checkpoints', 'consistency proof', 'start state', 'records complete', 'chain']) {
    t.is(statusOf(r, check), 'PASS', check);
  }
  t.regex(detailOf(r, 'records complete'), /477 records \(indices 300\.\.776\)/);
  // The extracted directory verifies the same way.
  const x = extract(f.archive, join(f.dir, 'x'));
  t.true((await verifyBundle(x, f.opts)).ok);
});

test('the auditor tools accept it: sha256sum -c --strict, the find/diff check, ssh-keygen -Y verify, openssl pkeyutl', async (t) => {
  const f = await fixture(t);
  const x = extract(f.archive, join(f.dir, 'x'));
  const sum = spawnSync('sha256sum', ['-c', '--strict', PATHS.manifest], { cwd: x, encoding: 'utf8' });
  t.is(sum.status, 0, sum.stderr);
  t.is(sum.stdout.trim().split('\n').length, listFiles(x).filter((p) => !isManifestFile(p)).length);

  // The README's completeness check, exactly as documented.
  const diff = spawnSync(
    'bash',
    ['-c', `find . -type f ! -name 'manifest.sha256*' | sed 's|^\\./||' | LC_ALL=C sort > actual.lst.tmp; cut -c67- manifest.sha256 | LC_ALL=C sort > listed.lst.tmp; diff listed.lst.tmp <(grep -v '.lst.tmp$' actual.lst.tmp)`],
    { cwd: x, encoding: 'utf8' },
  );
  t.is(diff.status, 0, diff.stdout + diff.stderr);
  rmSync(join(x, 'actual.lst.tmp'));
  rmSync(join(x, 'listed.lst.tmp'));

  const ssh = spawnSync(
    'ssh-keygen',
    ['-Y', 'verify', '-f', PATHS.allowedSigners, '-I', PRINCIPAL, '-n', DEFAULT_NAMESPACE, '-s', PATHS.manifestSig],
    { cwd: x, input: readFileSync(join(x, PATHS.manifest)), encoding: 'utf8' },
  );
  t.is(ssh.status, 0, ssh.stderr);
  t.regex(ssh.stdout, /Good "auditgate-evidence@v1" signature/);

  const ossl = spawnSync(
    'openssl',
    ['pkeyutl', '-verify', '-pubin', '-inkey', PATHS.signerPem, '-rawin', '-in', PATHS.manifest, '-sigfile', PATHS.manifestSigBin],
    { cwd: x, encoding: 'utf8' },
  );
  t.is(ossl.status, 0, ossl.stderr);
  t.regex(ossl.stdout, /Signature Verified Successfully/);

  // And they do reject: one changed byte.
  appendFileSync(join(x, PATHS.entries), ' ');
  t.not(spawnSync('sha256sum', ['-c', '--strict', '--quiet', PATHS.manifest], { cwd: x }).status, 0);
  writeFileSync(join(x, PATHS.manifest), Buffer.concat([readFileSync(join(x, PATHS.manifest)), Buffer.from('\n')]));
  t.not(
    spawnSync('ssh-keygen', ['-Y', 'verify', '-f', PATHS.allowedSigners, '-I', PRINCIPAL, '-n', DEFAULT_NAMESPACE, '-s', PATHS.manifestSig], {
      cwd: x,
      input: readFileSync(join(x, PATHS.manifest)),
    }).status,
    0,
  );
  t.not(
    spawnSync('openssl', ['pkeyutl', '-verify', '-pubin', '-inkey', PATHS.signerPem, '-rawin', '-in', PATHS.manifest, '-sigfile', PATHS.manifestSigBin], {
      cwd: x,
    }).status,
    0,
  );
});

test('the same period built twice gives identical archive bytes; tar headers are fixed', async (t) => {
  const f = await fixture(t);
  const again = join(f.dir, 'again.tar.gz');
  const b2 = await fixtureBundle({ log: f.log, keys: f.keys, from: 300, to: 777, out: again, within: [400, 512, 700] });
  t.true(readFileSync(f.archive).equals(readFileSync(again)));
  t.is(b2.archiveSha256, sha256(readFileSync(f.archive)));
  // gzip header: no name flag, mtime 0, OS = Unix.
  const gz = readFileSync(f.archive);
  t.is(gz[3], 0);
  t.is(gz.readUInt32LE(4), 0);
  t.is(gz[9], 3);
  // tar listing: sorted names, owner 0/0, fixed modes and time.
  const listing = execFileSync('tar', ['--numeric-owner', '-tvzf', f.archive], { encoding: 'utf8' }).trim().split('\n');
  const names = listing.map((l) => l.split(/\s+/).at(-1)!);
  t.deepEqual(names, [...names].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
  for (const l of listing) t.regex(l, /^(-rw-r--r--|drwxr-xr-x) 0\/0 +\d+ 2026-11-01 00:00 /);
  // A different evidence key gives different bytes (the signature is part of the archive).
  const other = join(f.dir, 'other.tar.gz');
  await fixtureBundle({ log: f.log, keys: evidenceKeys(), from: 300, to: 777, out: other, within: [400, 512, 700] });
  t.false(readFileSync(f.archive).equals(readFileSync(other)));
});

test('a changed byte in any file is caught, naming the file', async (t) => {
  const f = await fixture(t);
  const x = extract(f.archive, join(f.dir, 'x'));
  const files = listFiles(x);
  t.true(files.length >= 15);
  for (const p of files) {
    const copy = join(f.dir, `c-${p.replaceAll('/', '_')}`);
    extract(f.archive, copy);
    const file = join(copy, p);
    const bytes = readFileSync(file);
    const at = Math.floor(bytes.length / 2);
    bytes[at] = bytes[at]! ^ 0x01;
    writeFileSync(file, bytes);
    const r = await verifyBundle(await repack(copy, `${copy}.tar.gz`), f.opts);
    t.false(r.ok, `${p}: tampering not caught`);
    if (p === PATHS.manifest) t.is(statusOf(r, 'manifest signature'), 'FAIL', p);
    else if (p === PATHS.manifestSig) t.is(statusOf(r, 'manifest signature'), 'FAIL', p);
    else if (p === PATHS.manifestSigBin) t.is(statusOf(r, 'manifest raw signature'), 'FAIL', p);
    else t.regex(detailOf(r, 'manifest'), new RegExp(`changed: ${p.replaceAll('.', '\\.')} `), p);
    rmSync(copy, { recursive: true });
  }
});

test('a removed or an added file is caught', async (t) => {
  const f = await fixture(t);
  const x = extract(f.archive, join(f.dir, 'x'));
  for (const p of listFiles(x)) {
    const copy = extract(f.archive, join(f.dir, `r-${p.replaceAll('/', '_')}`));
    rmSync(join(copy, p));
    const r = await verifyBundle(copy, f.opts);
    t.false(r.ok, `removing ${p} not caught`);
    if (!isManifestFile(p)) t.regex(detailOf(r, 'manifest'), new RegExp(`missing: ${p.replaceAll('.', '\\.')}`));
  }
  const added = extract(f.archive, join(f.dir, 'added'));
  writeFileSync(join(added, 'audit', 'extra.ndjson'), '{}\n');
  const r = await verifyBundle(await repack(added, join(f.dir, 'added.tar.gz')), f.opts);
  t.false(r.ok);
  t.regex(detailOf(r, 'manifest'), /not in the manifest: audit\/extra\.ndjson/);
  // An extra "manifest.sha256.*" file is not a free pass either.
  const sneaky = extract(f.archive, join(f.dir, 'sneaky'));
  writeFileSync(join(sneaky, 'manifest.sha256.old'), 'x');
  t.regex(detailOf(await verifyBundle(sneaky, f.opts), 'manifest'), /unexpected file: manifest\.sha256\.old/);
});

test('an insider who re-signs the manifest still cannot remove, add, reorder or change a record', async (t) => {
  const f = await fixture(t);
  const lines = readFileSync(join(extract(f.archive, join(f.dir, 'orig')), PATHS.entries), 'utf8').split('\n').slice(0, -1);
  t.is(lines.length, 477);
  const cases: Array<{ name: string; edit: (l: string[]) => string[]; where: RegExp }> = [
    // Index 450 sits between the signed roots at 400 and 512.
    { name: 'removed record', edit: (l) => l.filter((_, i) => i !== 150), where: /among indices 400\.\.511/ },
    { name: 'reordered records', edit: (l) => { const c = [...l]; [c[150], c[151]] = [c[151]!, c[150]!]; return c; }, where: /among indices 400\.\.511/ },
    { name: 'changed record', edit: (l) => l.map((s, i) => (i === 320 ? s.replace('mcp.message', 'mcp.messagE') : s)), where: /among indices 512\.\.699/ },
    { name: 'added record', edit: (l) => [...l.slice(0, 50), l[49]!, ...l.slice(50)], where: /among indices 300\.\.399/ },
    { name: 'last record dropped', edit: (l) => l.slice(0, -1), where: /476 records, expected 477.*among indices 700\.\.776/ },
  ];
  for (const c of cases) {
    const d = extract(f.archive, join(f.dir, c.name.replaceAll(' ', '-')));
    writeFileSync(join(d, PATHS.entries), `${c.edit(lines).join('\n')}\n`);
    resign(d, f.keys);
    const r = await verifyBundle(await repack(d, `${d}.tar.gz`), f.opts);
    t.false(r.ok, c.name);
    t.is(statusOf(r, 'manifest'), 'PASS', `${c.name}: the insider's manifest is self-consistent`);
    t.is(statusOf(r, 'manifest signature'), 'PASS', c.name);
    t.deepEqual(failed(r), ['records complete'], c.name);
    t.regex(detailOf(r, 'records complete'), c.where, c.name);
  }
});

test('without checkpoints inside the period the first bad record is still bounded, exactly when they are dense', async (t) => {
  const f = await fixture(t, 64, 0, 64, []);
  const d = extract(f.archive, join(f.dir, 'x'));
  const lines = readFileSync(join(d, PATHS.entries), 'utf8').split('\n').slice(0, -1);
  lines[10] = lines[10]!.replace('"v":1', '"v":2');
  writeFileSync(join(d, PATHS.entries), `${lines.join('\n')}\n`);
  resign(d, f.keys);
  const r = await verifyBundle(d, f.opts);
  t.regex(detailOf(r, 'records complete'), /among indices 0\.\.63/);
  t.is(statusOf(r, 'consistency proof'), 'PASS', 'from the empty tree there is nothing to prove');

  // One signed root per record: the verifier names the record itself.
  const dense = join(f.dir, 'dense.tar.gz');
  await fixtureBundle({ log: f.log, keys: f.keys, from: 0, to: 64, out: dense, within: Array.from({ length: 63 }, (_, i) => i + 1) });
  const d2 = extract(dense, join(f.dir, 'dense'));
  writeFileSync(join(d2, PATHS.entries), `${lines.join('\n')}\n`);
  resign(d2, f.keys);
  t.regex(detailOf(await verifyBundle(d2, f.opts), 'records complete'), /the first bad record is index 10 \(line 11\)/);
});

test('a forged signature is caught: another key, or a signature moved from another manifest', async (t) => {
  const f = await fixture(t);
  const d = extract(f.archive, join(f.dir, 'x'));
  writeFileSync(join(d, PATHS.entries), `${readFileSync(join(d, PATHS.entries), 'utf8')}`.replace('"v":1', '"v":9'));
  const mallory = evidenceKeys();
  // Mallory also swaps the convenience key copy: the key trusted out of band still decides.
  writeFileSync(join(d, PATHS.signerPub), `${openSshPublicKeyLine(mallory.publicKey, PRINCIPAL)}\n`);
  resign(d, mallory);
  const r = await verifyBundle(d, f.opts);
  t.is(statusOf(r, 'manifest signature'), 'FAIL');
  t.is(statusOf(r, 'manifest raw signature'), 'FAIL');
  t.regex(detailOf(r, 'manifest signature'), /signed by SHA256:.*expected SHA256:/);

  // A valid signature from the right key over a different manifest.
  const other = await fixture(t);
  const d2 = extract(f.archive, join(f.dir, 'moved'));
  const otherDir = extract(other.archive, join(f.dir, 'other'));
  writeFileSync(join(d2, PATHS.manifestSig), readFileSync(join(otherDir, PATHS.manifestSig)));
  const r2 = await verifyBundle(d2, { ...f.opts, signerKey: other.keys.publicKey });
  t.is(statusOf(r2, 'manifest signature'), 'FAIL');
  t.regex(detailOf(r2, 'manifest signature'), /does not match the message/);

  // Wrong namespace.
  const d3 = extract(f.archive, join(f.dir, 'ns'));
  writeFileSync(join(d3, PATHS.manifestSig), sshsigSign(readFileSync(join(d3, PATHS.manifest)), f.keys.privateKey, 'file'));
  t.regex(detailOf(await verifyBundle(d3, f.opts), 'manifest signature'), /namespace is "file"/);
});

test('a checkpoint from another log is refused, even with matching keys copied into the bundle', async (t) => {
  const f = await fixture(t);
  const evil = new MemoryLog('auditgate.test/log');
  fillLog(evil, 1000);
  evil.append(Buffer.from('{"x":1}'));
  const d = extract(f.archive, join(f.dir, 'x'));
  writeFileSync(join(d, PATHS.checkpointEnd), (await evil.checkpoint(777)).note);
  writeFileSync(join(d, PATHS.logVkey), `${evil.vkey}\n`);
  resign(d, f.keys);
  const r = await verifyBundle(d, f.opts);
  t.is(statusOf(r, 'checkpoints'), 'FAIL');
  t.regex(detailOf(r, 'checkpoints'), /checkpoint-end\.txt/);

  // A log with another origin, verified with that log's own key: origin ≠ bundle's log.
  const other = new MemoryLog('other.example/log');
  fillLog(other, 1000);
  const d2 = extract(f.archive, join(f.dir, 'y'));
  writeFileSync(join(d2, PATHS.checkpointEnd), (await other.checkpoint(777)).note);
  resign(d2, f.keys);
  t.is(statusOf(await verifyBundle(d2, f.opts), 'checkpoints'), 'FAIL');
  const r3 = await verifyBundle(d2, { ...f.opts, vkey: other.vkey });
  t.false(r3.ok);
  t.is(statusOf(r3, 'checkpoints'), 'FAIL');

  // Without --vkey the bundle's own key is used, and the output says so.
  const r4 = await verifyBundle(f.archive, { signerKey: f.keys.publicKey });
  t.true(r4.ok);
  t.is(statusOf(r4, 'log key'), 'WARN');
});

test('bundles chain: the previous archive hash and the shared checkpoint are checked, a gap or a swap is caught', async (t) => {
  const dir = tempDir(t);
  const log = new MemoryLog('auditgate.test/log');
  fillLog(log, 1000);
  const keys = evidenceKeys();
  const opts = { vkey: log.vkey, signerKey: keys.publicKey };
  const a = await fixtureBundle({ log, keys, from: 0, to: 300, out: join(dir, 'a.tar.gz'), bundleId: 'A' });
  const previous = { archiveSha256: a.archiveSha256, bundleId: 'A', endSize: 300, endRoot: await log.rootAt(300) };
  await fixtureBundle({ log, keys, from: 300, to: 777, out: join(dir, 'b.tar.gz'), bundleId: 'B', previous });

  const ok = await verifyBundle(join(dir, 'b.tar.gz'), { ...opts, previous: join(dir, 'a.tar.gz') });
  t.true(ok.ok, JSON.stringify(ok.lines));
  t.regex(detailOf(ok, 'chain'), /follows A .* no gap/);
  const noPrev = await verifyBundle(join(dir, 'b.tar.gz'), opts);
  t.is(statusOf(noPrev, 'chain'), 'SKIP');

  // A different "previous" (same log, other range): hash and checkpoint both differ.
  const a2 = await fixtureBundle({ log, keys, from: 0, to: 299, out: join(dir, 'a2.tar.gz'), bundleId: 'A' });
  t.not(a2.archiveSha256, a.archiveSha256);
  const swapped = await verifyBundle(join(dir, 'b.tar.gz'), { ...opts, previous: join(dir, 'a2.tar.gz') });
  t.is(statusOf(swapped, 'chain'), 'FAIL');
  t.regex(detailOf(swapped, 'chain'), /previous archive SHA-256 is/);
  t.regex(detailOf(swapped, 'chain'), /ends at size 299/);

  // A gap: C starts at 350 but names A (ending at 300) as its predecessor.
  await fixtureBundle({ log, keys, from: 350, to: 777, out: join(dir, 'c.tar.gz'), bundleId: 'C', previous });
  const gap = await verifyBundle(join(dir, 'c.tar.gz'), { ...opts, previous: join(dir, 'a.tar.gz') });
  t.is(statusOf(gap, 'chain'), 'FAIL');
  t.regex(detailOf(gap, 'chain'), /ends at size 300 .* starts at 350 .* not covered/);

  // A first bundle given a previous one: refused.
  t.is(statusOf(await verifyBundle(join(dir, 'a.tar.gz'), { ...opts, previous: join(dir, 'a2.tar.gz') }), 'chain'), 'FAIL');
});

test('the builder refuses records that are not contiguous or hold a newline', async (t) => {
  const f = await fixture(t, 20, 0, 20, []);
  const input = await fixtureBundleInput({ log: f.log, keys: f.keys, from: 5, to: 10, out: '' });
  const entries = [...(input.audit.entries as Iterable<{ index: number; data: Uint8Array }>)];
  await t.throwsAsync(buildBundle({ ...input, audit: { ...input.audit, entries: entries.filter((e) => e.index !== 7) } }, join(f.dir, 'a.tgz')), {
    message: /expected record 7, got 8/,
  });
  await t.throwsAsync(buildBundle({ ...input, audit: { ...input.audit, entries: entries.slice(0, 4) } }, join(f.dir, 'b.tgz')), {
    message: /records end at 9, expected 10/,
  });
  entries[2] = { index: 7, data: Buffer.from('{"a":\n1}') };
  await t.throwsAsync(buildBundle({ ...input, audit: { ...input.audit, entries } }, join(f.dir, 'c.tgz')), { message: /record 7 contains a newline/ });
  t.false(statSync(f.dir).isFile());
});

test("docs/auditors.md's Python recomputation agrees: OK on the bundle, FAIL with one record removed", async (t) => {
  const f = await fixture(t);
  const doc = readFileSync(join(process.cwd(), 'docs', 'auditors.md'), 'utf8');
  const script = /```python\n([\s\S]*?)```/.exec(doc)?.[1];
  t.truthy(script, 'the guide has a Python block');
  writeFileSync(join(f.dir, 'recompute.py'), script!);
  const x = extract(f.archive, join(f.dir, 'x'));
  const ok = spawnSync('python3', [join(f.dir, 'recompute.py')], { cwd: x, encoding: 'utf8' });
  t.is(ok.status, 0, ok.stderr);
  t.regex(ok.stdout, /OK: end root recomputed/);
  const lines = readFileSync(join(x, PATHS.entries), 'utf8').split('\n');
  lines.splice(100, 1);
  writeFileSync(join(x, PATHS.entries), lines.join('\n'));
  const bad = spawnSync('python3', [join(f.dir, 'recompute.py')], { cwd: x, encoding: 'utf8' });
  t.regex(bad.stdout, /FAIL: end root differs/);
});

test('a period without records is still a signed, verifiable bundle (and still catches an added record)', async (t) => {
  const f = await fixture(t, 50, 20, 20, []);
  const r = await verifyBundle(f.archive, f.opts);
  t.true(r.ok, JSON.stringify(r.lines.filter((l) => l.status === 'FAIL')));
  t.is(r.records, 0);
  t.regex(detailOf(r, 'records complete'), /^0 records/);
  const d = extract(f.archive, join(f.dir, 'x'));
  writeFileSync(join(d, PATHS.entries), '{"sneaked":"in"}\n');
  resign(d, f.keys);
  t.regex(detailOf(await verifyBundle(d, f.opts), 'records complete'), /1 records, expected 0/);
});
