// The running header at the top of every report page: the report id on the right stays whole and
// the title on the left yields, so the two never print over each other — also for an evidence
// bundle's reports, whose period labels are two timestamps. Read back with poppler's word boxes.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderDocument } from '../reports/pdf/document.ts';
import { tempDir } from './helpers/evidence-fixture.ts';

interface Word {
  text: string;
  xMin: number;
  xMax: number;
  yMin: number;
}

/** Words of page 2's header band (above the rule at 42 pt), from `pdftotext -bbox`. */
function headerWords(file: string): Word[] {
  const html = execFileSync('pdftotext', ['-bbox', '-f', '2', '-l', '2', file, '-'], { encoding: 'utf8' });
  const words: Word[] = [];
  for (const m of html.matchAll(/<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="[\d.]+">([^<]*)<\/word>/g)) {
    const w = { xMin: Number(m[1]), yMin: Number(m[2]), xMax: Number(m[3]), text: m[4]! };
    if (w.yMin < 42) words.push(w);
  }
  return words.sort((a, b) => a.xMin - b.xMin);
}

async function render(t: { teardown(fn: () => void): void }, shortTitle: string, reportId: string): Promise<string> {
  const meta = { title: shortTitle, shortTitle, reportId, dataHash: 'ab'.repeat(32), generatedAt: '2026-11-26T07:16:23.522Z' };
  const pdf = await renderDocument(meta, (doc) => {
    doc.newPage();
    doc.doc.text('Cover');
    doc.newPage();
    doc.doc.text('Summary');
  });
  const file = join(tempDir(t), 'r.pdf');
  writeFileSync(file, pdf);
  return file;
}

const period = '2026-11-26T07:15:00.000Z..2026-11-26T07:16:30.000Z';

test('a long title is cut with an ellipsis; the report id stays whole; nothing overlaps', async (t) => {
  const words = headerWords(await render(t, `auditgate · Gateway activity and anomalies — ${period}`, `ACT-${period}`));
  t.true(words.length > 2, JSON.stringify(words));
  for (let i = 1; i < words.length; i++) {
    t.true(words[i - 1]!.xMax <= words[i]!.xMin, `"${words[i - 1]!.text}" runs into "${words[i]!.text}"`);
  }
  const text = words.map((w) => w.text).join(' ');
  t.true(text.endsWith(`Report ACT-${period}`), text);
  t.regex(text, /^auditgate · Gateway activity and anomalies — .*…/u);
});

test('a title that fits is printed whole', async (t) => {
  const words = headerWords(await render(t, 'auditgate · Gateway activity and anomalies — 2026-11', 'ACT-2026-11'));
  t.is(words.map((w) => w.text).join(' '), 'auditgate · Gateway activity and anomalies — 2026-11 Report ACT-2026-11');
});
