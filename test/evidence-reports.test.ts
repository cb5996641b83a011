// Reports inside a bundle: the data hash (SHA-256 of the canonical JSON) must match bundle.json
// and appear in the footer of every PDF page. The verifier reads the PDF with its own small text
// extractor; poppler's pdftotext is the independent witness that it reads what a person sees.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { sign } from 'node:crypto';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { MemoryLog, evidenceKeys, fillLog, fixtureBundle, sha256, tempDir } from './helpers/evidence-fixture.ts';
import { renderDocument } from '../reports/pdf/document.ts';
import { canonicalBytes } from '../reports/canonical.ts';
import { PATHS, isManifestFile } from '../reports/evidence/layout.ts';
import { formatManifest } from '../reports/evidence/manifest.ts';
import { sshsigSign } from '../reports/evidence/sshsig.ts';
import { pdfPageTexts } from '../server/evidence/pdf-text.ts';
import { verifyBundle } from '../server/evidence/verify.ts';
import type { EvidenceReport } from '../reports/evidence/types.ts';

async function pdfWithFooter(hash: string, pages: number): Promise<Buffer> {
  const meta = { title: 'Access review', shortTitle: 'Access review', reportId: 'AR-1', dataHash: hash, generatedAt: '2026-11-01T00:00:00.000Z' };
  return renderDocument(meta, (doc) => {
    for (let i = 0; i < pages; i++) {
      doc.newPage();
      doc.doc.text(`Section ${i + 1}: entitlements ÄÖÜ → ok`);
    }
  });
}

function reportFor(json: Buffer, pdf: Buffer): EvidenceReport {
  return {
    name: 'access-review',
    json: 'access-review.json',
    pdf: 'access-review.pdf',
    files: [
      { name: 'access-review.json', content: json },
      { name: 'access-review.pdf', content: pdf },
      { name: 'access-review-entitlements.csv', content: Buffer.from('item id,account\r\nE-1,alice\r\n') },
    ],
    meta: { report_id: 'AR-1' },
  };
}

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

function resign(dir: string, privateKey: Parameters<typeof sshsigSign>[1]): void {
  const manifest = Buffer.from(
    formatManifest(listFiles(dir).filter((p) => !isManifestFile(p)).map((p) => ({ path: p, sha256: sha256(readFileSync(join(dir, p))) }))),
  );
  writeFileSync(join(dir, PATHS.manifest), manifest);
  writeFileSync(join(dir, PATHS.manifestSig), sshsigSign(manifest, privateKey, 'auditgate-evidence@v1'));
  writeFileSync(join(dir, PATHS.manifestSigBin), sign(null, manifest, privateKey));
}

test('our PDF text extractor sees the footer hash on every page, as pdftotext does', async (t) => {
  const hash = sha256(Buffer.from('data'));
  const pdf = await pdfWithFooter(hash, 3);
  const ours = pdfPageTexts(pdf);
  t.is(ours.length, 3);
  const dir = tempDir(t);
  writeFileSync(join(dir, 'r.pdf'), pdf);
  for (let p = 1; p <= 3; p++) {
    const poppler = execFileSync('pdftotext', ['-f', String(p), '-l', String(p), join(dir, 'r.pdf'), '-'], { encoding: 'utf8' });
    t.true(poppler.replace(/\s+/g, '').includes(hash), `pdftotext page ${p}`);
    t.true(ours[p - 1]!.replace(/\s+/g, '').includes(hash), `ours page ${p}`);
    t.true(ours[p - 1]!.includes(`Page ${p} of 3`));
    t.true(ours[p - 1]!.includes('ÄÖÜ → ok'));
  }
  t.throws(() => pdfPageTexts(Buffer.from('not a pdf')), { message: /not a PDF/ });
});

test('a bundle with a report: data hash matches the canonical JSON and every PDF footer', async (t) => {
  const dir = tempDir(t);
  const log = new MemoryLog('auditgate.test/log');
  fillLog(log, 50);
  const keys = evidenceKeys();
  const json = canonicalBytes({ schema: 'auditgate.access-review/1', lines: [{ id: 'E-1', decision: 'keep' }], z: 'ü' });
  const hash = sha256(json);
  const good = await fixtureBundle({ log, keys, from: 10, to: 50, out: join(dir, 'good.tar.gz'), reports: [reportFor(json, await pdfWithFooter(hash, 2))] });
  t.is((good.bundleJson.reports as Array<{ data_sha256: string }>)[0]!.data_sha256, hash);
  const opts = { vkey: log.vkey, signerKey: keys.publicKey };
  const r = await verifyBundle(join(dir, 'good.tar.gz'), opts);
  t.true(r.ok, JSON.stringify(r.lines, null, 1));
  const line = r.lines.find((l) => l.check === 'report access-review')!;
  t.is(line.status, 'PASS');
  t.regex(line.detail, new RegExp(`${hash} matches the canonical JSON and the footer of all 2 PDF pages`));

  // The PDF of other data (an insider swaps it and re-signs): the footer names another hash.
  await fixtureBundle({
    log,
    keys,
    from: 10,
    to: 50,
    out: join(dir, 'swapped.tar.gz'),
    reports: [reportFor(json, await pdfWithFooter(sha256(Buffer.from('other data')), 2))],
  });
  const bad = await verifyBundle(join(dir, 'swapped.tar.gz'), opts);
  t.false(bad.ok);
  t.regex(bad.lines.find((l) => l.check === 'report access-review')!.detail, /not in the footer of page\(s\) 1, 2/);

  // JSON that is not canonical (pretty-printed) but whose hash an insider wrote into bundle.json.
  const pretty = Buffer.from(JSON.stringify(JSON.parse(json.toString()), null, 2));
  const x = join(dir, 'x');
  execFileSync('mkdir', ['-p', x]);
  execFileSync('tar', ['-xzf', join(dir, 'good.tar.gz'), '-C', x, '-m']);
  writeFileSync(join(x, 'reports/access-review.json'), pretty);
  const bj = JSON.parse(readFileSync(join(x, PATHS.bundleJson), 'utf8'));
  bj.reports[0].data_sha256 = sha256(pretty);
  writeFileSync(join(x, PATHS.bundleJson), JSON.stringify(bj, null, 2));
  resign(x, keys.privateKey);
  const nc = await verifyBundle(x, opts);
  t.is(nc.lines.find((l) => l.check === 'manifest')!.status, 'PASS');
  t.regex(nc.lines.find((l) => l.check === 'report access-review')!.detail, /not RFC 8785 canonical JSON/);
  t.regex(nc.lines.find((l) => l.check === 'report access-review')!.detail, /not in the footer/);
});
