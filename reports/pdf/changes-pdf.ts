// The CC8.1 configuration and policy change log as a PDF, rendered from its canonical JSON.
import type { ChangeLogData } from '../changes.ts';
import type { RunInfo } from '../run-exceptions.ts';
import {
  renderDocument,
  type DocMeta,
  COLORS,
  fmtTime,
  formatCount,
  periodFact,
  provenanceFacts,
} from './document.ts';

export async function renderChangeLogPdf(d: ChangeLogData, dataHash: string, run: RunInfo): Promise<Buffer> {
  const meta: DocMeta = {
    title: d.title,
    shortTitle: `auditgate · ${d.title}`,
    reportId: d.reportId,
    dataHash,
    generatedAt: run.generatedAt,
    subject: `SOC 2 CC8.1 change evidence, period ${d.period.label}`,
  };
  return renderDocument(meta, (pdf) => {
    pdf.cover({
      kicker: 'SOC 2 evidence · change management',
      title: d.title,
      subtitle:
        'Every change to targets, policies, roles and keys recorded in the audit log, with author, approver and state hashes.',
      facts: [
        ['Report id', d.reportId],
        periodFact(d.period),
        ...provenanceFacts(run, d.generator, d.scope.auditLog.treeSize, dataHash),
      ],
      controls: d.controls,
      contents: ['Summary', 'Changes', 'Exceptions', 'Scope and method'],
      notice:
        'Rendered from the canonical JSON (RFC 8785) whose SHA-256 is printed above and in every footer.',
    });
    const t = d.totals;
    pdf.section('Summary');
    pdf.tiles([
      { label: 'Changes', value: formatCount(t.changes) },
      { label: 'Approved by another person', value: formatCount(t.approvedByOther), tone: 'ok' },
      { label: 'Self-approved', value: formatCount(t.selfApproved), tone: t.selfApproved ? 'bad' : 'ok' },
      { label: 'No approval recorded', value: formatCount(t.noApproval), tone: t.noApproval ? 'warn' : 'ok' },
    ]);
    pdf.table(
      [
        { header: 'Kind', width: 2, value: (r) => r.kind },
        { header: 'Action', width: 2, value: (r) => r.action },
        { header: 'Changes', width: 1, value: (r) => formatCount(r.n), align: 'right' },
      ],
      d.byKind,
      { emptyText: 'No configuration changes in this period.' },
    );
    pdf.section('Changes', 'landscape');
    pdf.table(
      [
        { header: 'Leaf', width: 0.8, value: (c) => String(c.leaf), mono: true, align: 'right' },
        { header: 'When', width: 1.5, value: (c) => fmtTime(c.ts) },
        { header: 'Author', width: 1.8, value: (c) => `${c.author}\n${c.authMethod}` },
        {
          header: 'What',
          width: 1.6,
          value: (c) => `${c.kind} ${c.action}${c.objectId ? `\n${c.objectId}` : ''}`,
        },
        { header: 'Summary', width: 2.4, value: (c) => c.summary ?? '' },
        {
          header: 'Before → after (SHA-256)',
          width: 2.6,
          value: (c) =>
            `${(c.beforeSha256 ?? 'none').slice(0, 16)}… → ${(c.afterSha256 ?? 'none').slice(0, 16)}…`,
          mono: true,
        },
        { header: 'Approver', width: 1.5, value: (c) => c.approver ?? '—' },
        {
          header: 'Segregation',
          width: 1.3,
          value: (c) => c.segregation.replace(/_/g, ' '),
          color: (c) =>
            c.segregation === 'approved_by_other'
              ? COLORS.ok
              : c.segregation === 'self_approved'
                ? COLORS.bad
                : COLORS.warn,
        },
      ],
      d.changes,
      { caption: 'Changes', fontSize: 7, emptyText: 'No configuration changes in this period.' },
    );
    pdf.section('Exceptions');
    pdf.table(
      [
        { header: 'Leaf', width: 1, value: (e) => String(e.leaf), mono: true },
        { header: 'Detail', width: 8, value: (e) => e.detail },
      ],
      d.exceptions,
      {
        caption: 'Exceptions',
        emptyText: 'No exceptions: every change was approved by someone other than its author.',
      },
    );
    pdf.section('Scope and method');
    pdf.keyValues([
      ['Audit log tree size', d.scope.auditLog.treeSize.toLocaleString('en-US')],
      ['Audit log root (hex)', d.scope.auditLog.rootHex],
    ]);
    for (const s of d.scope.sources) {
      pdf.doc
        .font('bold')
        .fontSize(8)
        .fillColor(COLORS.ink)
        .text(`${s.name} — ${s.rows} rows, query SHA-256 ${s.queryHash}`, 48, pdf.doc.y, {
          width: pdf.pageWidth,
        });
      pdf.doc
        .font('mono')
        .fontSize(6.5)
        .fillColor(COLORS.muted)
        .text(s.query, 48, pdf.doc.y + 2, { width: pdf.pageWidth });
    }
  });
}
