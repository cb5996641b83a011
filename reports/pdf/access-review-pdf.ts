// The access-review PDF: rendered only from the canonical JSON data (plus cover run metadata),
// so everything it says can be checked against the JSON twin whose hash is in every footer.
import type { AccessReviewData, ReportLine } from '../access-review.ts';
import { FLAG_LABELS, type Flag } from '../access-types.ts';
import type { RunInfo } from '../run-exceptions.ts';
import {
  renderDocument,
  type DocMeta,
  COLORS,
  fmtDate,
  fmtTime,
  formatCount,
  periodFact,
  provenanceFacts,
  type Column,
} from './document.ts';
import { ENTITLEMENT_DICTIONARY } from '../access-csv.ts';

export const ACCESS_REVIEW_SECTIONS = [
  'Executive summary',
  'Scope and method',
  'Population changes',
  'Reviewer assignments and independence',
  'Entitlements',
  'Privileged access',
  'Exceptions and remediation',
  'Access at launch and after remediation',
  'Sign-off',
  'Appendix',
];

const decisionColor = (l: ReportLine) =>
  l.decision === 'revoke'
    ? COLORS.bad
    : l.decision === 'modify'
      ? COLORS.warn
      : l.decision === 'pending'
        ? COLORS.muted
        : COLORS.ok;

const flagText = (flags: Flag[]) => flags.map((f) => FLAG_LABELS[f]).join(', ');

export async function renderAccessReviewPdf(
  data: AccessReviewData,
  dataHash: string,
  run: RunInfo,
): Promise<Buffer> {
  const meta: DocMeta = {
    title: data.title,
    shortTitle: `auditgate · ${data.title}`,
    reportId: data.reportId,
    dataHash,
    generatedAt: run.generatedAt,
    subject: `SOC 2 ${data.controls.map((c) => c.id).join(', ')} user access review, period ${data.period.label}`,
    keywords: 'SOC 2, access review, CC6.2, CC6.3, audit evidence',
  };
  return renderDocument(meta, (pdf) => {
    const byId = new Map(data.lines.map((l) => [l.itemId, l]));
    const s = data.summary;

    pdf.cover({
      kicker: 'SOC 2 evidence · user access review',
      title: data.title,
      subtitle: `Accounts, API keys and agents with access to MCP targets through auditgate, frozen as of ${fmtTime(data.asOf)}.`,
      facts: [
        ['Report id', data.reportId],
        ['Campaign', data.campaignId],
        periodFact(data.period),
        ['Population as of', fmtTime(data.asOf)],
        [
          'Status',
          data.status === 'completed' ? 'Completed and signed off' : `Open — ${s.completionPercent}% decided`,
        ],
        ...provenanceFacts(run, data.generator, data.scope.auditLog.treeSize, dataHash),
      ],
      controls: data.controls,
      contents: ACCESS_REVIEW_SECTIONS,
      notice:
        'This document is rendered from the canonical JSON (RFC 8785) report whose SHA-256 appears above and in every page footer. ' +
        'Recompute that hash over the JSON file to confirm this document and the data agree. Criteria ids refer to the AICPA 2017 ' +
        'Trust Services Criteria; descriptions are auditgate’s own wording.',
    });

    // 1. Executive summary
    pdf.section('Executive summary');
    pdf.tiles([
      {
        label: 'Identities in scope',
        value: formatCount(s.identities.total),
        note: `${s.identities.human} human · ${s.identities.service} service · ${s.identities.agent} agent`,
      },
      { label: 'Targets', value: formatCount(s.targets), note: 'MCP targets with entitlements' },
      { label: 'Entitlement lines', value: formatCount(s.entitlements), note: `${s.privileged} privileged` },
      {
        label: 'Decided',
        value: `${s.completionPercent}%`,
        note: `${s.decisions.pending} pending`,
        tone: s.decisions.pending ? 'warn' : 'ok',
      },
      { label: 'Keep', value: formatCount(s.decisions.keep), tone: 'ok' },
      {
        label: 'Revoke',
        value: formatCount(s.decisions.revoke),
        tone: s.decisions.revoke ? 'bad' : undefined,
      },
      {
        label: 'Modify',
        value: formatCount(s.decisions.modify),
        tone: s.decisions.modify ? 'warn' : undefined,
      },
      {
        label: 'Exceptions',
        value: formatCount(s.exceptions),
        note: 'see section 7',
        tone: s.exceptions ? 'bad' : 'ok',
      },
    ]);
    pdf.heading('Remediation');
    pdf.keyValues([
      [
        'Revocations and changes',
        `${s.remediation.required} required, ${s.remediation.withinSla} within SLA, ${s.remediation.afterSla} after SLA, ${s.remediation.open} open`,
      ],
      [
        'Verified in completion snapshot',
        `${s.remediation.verified} of ${s.decisions.revoke} revocations verified absent`,
      ],
      ['Remediation SLA', `${data.scope.settings.remediationSlaDays} days from decision`],
    ]);
    pdf.heading('Flags');
    const flagRows = (Object.keys(s.flags) as Flag[]).map((f) => ({ flag: f, n: s.flags[f] }));
    pdf.table(
      [
        { header: 'Flag', width: 2, value: (r) => FLAG_LABELS[r.flag] },
        { header: 'Lines', width: 1, value: (r) => formatCount(r.n), align: 'right' },
        { header: 'Meaning', width: 7, value: (r) => FLAG_MEANINGS[r.flag](data) },
      ],
      flagRows,
      { fontSize: 8 },
    );
    const perTarget = new Map<string, { used: number; dormant: number }>();
    for (const l of data.lines) {
      if (l.tool === '') continue;
      const t = perTarget.get(l.target) ?? { used: 0, dormant: 0 };
      if (l.flags.includes('dormant')) t.dormant++;
      else t.used++;
      perTarget.set(l.target, t);
    }
    pdf.barChart({
      title: 'Entitlements per target',
      rows: [...perTarget]
        .sort((a, b) => (a[0] < b[0] ? -1 : 1))
        .map(([label, v]) => ({ label, values: [v.used, v.dormant] })),
      series: [
        { name: 'used recently', color: COLORS.series[0]! },
        { name: `dormant (≥ ${data.scope.settings.dormantDays} days)`, color: COLORS.series[2]! },
      ],
    });
    pdf.para(conclusion(data), { size: 9 });

    // 2. Scope and method
    pdf.section('Scope and method');
    pdf.para(
      'The population is system-generated: accounts and entitlements are read from auditgate’s own stores and use is aggregated ' +
        'in SQL from the audit log’s derived event table, bounded by the audit-log tree size below, so the same query over the same ' +
        'log gives the same rows. Each source’s query text is in the appendix; its SHA-256 is listed here.',
    );
    pdf.keyValues([
      ['Population as of', fmtTime(data.asOf)],
      ['Usage window', `${fmtTime(data.period.start)} – ${fmtTime(data.period.end)}`],
      ['Audit log tree size', data.scope.auditLog.treeSize.toLocaleString('en-US')],
      ['Audit log root (hex)', data.scope.auditLog.rootHex],
      ['Snapshot SHA-256', data.scope.snapshotHash],
      ['Dormant after', `${data.scope.settings.dormantDays} days without use`],
      [
        'Shared credential',
        `≥ ${data.scope.settings.sharedAddressThreshold} client addresses within one hour`,
      ],
    ]);
    pdf.heading('Sources (information produced by the entity)');
    pdf.table(
      [
        { header: 'Source', width: 3, value: (r) => r.name },
        { header: 'As of', width: 2.2, value: (r) => fmtTime(r.asOf) },
        { header: 'Rows', width: 1, value: (r) => formatCount(r.rows), align: 'right' },
        { header: 'Query SHA-256', width: 6, value: (r) => r.queryHash, mono: true },
      ],
      data.scope.sources,
      { fontSize: 7.5 },
    );
    const ct = data.scope.controlTotals;
    pdf.heading('Control totals');
    pdf.table(
      [
        { header: 'Measure', width: 6, value: (r: [string, string]) => r[0] },
        { header: 'Count', width: 2, value: (r: [string, string]) => r[1], align: 'right' },
      ],
      [
        ['Identities fetched', formatCount(ct.rowsFetched.identities)],
        ['Entitlements fetched', formatCount(ct.rowsFetched.entitlements)],
        [
          'Entitlements of accounts outside the population (exceptions)',
          formatCount(ct.unattributedEntitlements),
        ],
        [
          'Identities with no entitlement (shown as their own line)',
          formatCount(ct.identitiesWithoutEntitlement),
        ],
        ['Lines in this report', formatCount(ct.linesInReport)],
        ['Lines decided', formatCount(ct.linesDecided)],
        ['Usage aggregates fetched', formatCount(ct.rowsFetched.usage)],
        ['Usage without an entitlement on record (exceptions)', formatCount(ct.unmatchedUsageRows)],
      ],
      { fontSize: 8 },
    );
    pdf.para(
      ct.reconciles
        ? `Reconciliation: entitlements fetched (${ct.rowsFetched.entitlements}) − outside population (${ct.unattributedEntitlements}) + identities without entitlement (${ct.identitiesWithoutEntitlement}) = lines in report (${ct.linesInReport}); every fetched identity appears in the report. Reconciles.`
        : 'Reconciliation FAILED: rows fetched and lines in the report differ. Treat this report as incomplete.',
      { color: ct.reconciles ? COLORS.ok : COLORS.bad },
    );

    // 3. Population changes
    pdf.section('Population changes');
    pdf.para(
      data.populationChanges.previousReportId
        ? `Compared with the previous review ${data.populationChanges.previousReportId}.`
        : 'No previous review on record: every line is compared against the period start (created during the period = new).',
    );
    // Population changes are listed per account (one row per account, its lines summarised), so
    // the section stays readable; every line is in section 5 and in the CSV.
    interface AccountRow {
      subject: string;
      accountId: string;
      person: string | null;
      type: string;
      lines: ReportLine[];
    }
    const byAccount = (ids: string[]): AccountRow[] => {
      const m = new Map<string, AccountRow>();
      for (const l of pick(ids)) {
        const row = m.get(l.accountId) ?? {
          subject: l.subject,
          accountId: l.accountId,
          person: l.person,
          type: l.identityType,
          lines: [],
        };
        row.lines.push(l);
        m.set(l.accountId, row);
      }
      return [...m.values()].sort((a, b) => (a.subject < b.subject ? -1 : a.subject > b.subject ? 1 : 0));
    };
    const lastUse = (r: AccountRow) =>
      r.lines.reduce<string | null>(
        (m, l) => (l.lastUsedAt && (!m || l.lastUsedAt > m) ? l.lastUsedAt : m),
        null,
      );
    const accountCols: Column<AccountRow>[] = [
      {
        header: 'Account',
        width: 2.6,
        value: (r) => `${r.subject}\n${displayAccountId(r.accountId, r.subject)}`.trim(),
      },
      {
        header: 'Person',
        width: 2,
        value: (r) => r.person ?? '(none)',
        color: (r) => (r.person ? undefined : COLORS.bad),
      },
      { header: 'Type', width: 0.9, value: (r) => r.type },
      { header: 'Lines', width: 0.7, value: (r) => String(r.lines.length), align: 'right' },
      {
        header: 'Entitlements',
        width: 4.2,
        value: (r) =>
          r.lines
            .map((l) =>
              l.tool === '' ? `role ${l.role}` : `${l.target}${l.tool === '*' ? '' : `/${l.tool}`}`,
            )
            .join(', '),
      },
      { header: 'Last used', width: 1.3, value: (r) => fmtDate(lastUse(r)) },
    ];
    const pick = (ids: string[]) => ids.map((id) => byId.get(id)).filter((l): l is ReportLine => !!l);
    const changes: Array<[string, string[], string, string]> = [
      ['New since last review', data.populationChanges.new, 'New access', 'No new access.'],
      [
        'Orphaned — no accountable person',
        data.populationChanges.orphaned,
        'Orphaned accounts',
        'No orphaned accounts.',
      ],
      [
        `Dormant — unused ≥ ${data.scope.settings.dormantDays} days`,
        data.populationChanges.dormant,
        'Dormant access',
        'No dormant access.',
      ],
    ];
    pdf.tiles(
      [
        { label: 'New lines', value: formatCount(data.populationChanges.new.length) },
        { label: 'Removed lines', value: formatCount(data.populationChanges.removed.length) },
        {
          label: 'Orphaned lines',
          value: formatCount(data.populationChanges.orphaned.length),
          tone: data.populationChanges.orphaned.length ? 'warn' : 'ok',
        },
        {
          label: 'Dormant lines',
          value: formatCount(data.populationChanges.dormant.length),
          tone: data.populationChanges.dormant.length ? 'warn' : 'ok',
        },
      ],
      4,
    );
    for (const [title, ids, caption, empty] of changes.slice(0, 1)) {
      const rows = byAccount(ids);
      pdf.heading(`${title} (${ids.length} lines, ${rows.length} accounts)`);
      pdf.table(accountCols, rows, { caption, emptyText: empty });
    }
    pdf.heading(`Removed since last review (${data.populationChanges.removed.length})`);
    pdf.table(
      [
        { header: 'Item', width: 1.9, value: (r) => r.itemId, mono: true },
        { header: 'Target', width: 1.5, value: (r) => r.target },
        { header: 'Account', width: 2.4, value: (r) => r.subject },
        { header: 'Entitlement', width: 4, value: (r) => r.entitlement },
      ],
      data.populationChanges.removed,
      {
        caption: 'Removed lines',
        emptyText: data.populationChanges.previousReportId
          ? 'Nothing removed.'
          : 'No previous review to compare with.',
      },
    );
    for (const [title, ids, caption, empty] of changes.slice(1)) {
      const rows = byAccount(ids);
      pdf.heading(`${title} (${ids.length} lines, ${rows.length} accounts)`);
      pdf.table(accountCols, rows, { caption, emptyText: empty });
    }

    // 4. Reviewers
    pdf.section('Reviewer assignments and independence');
    pdf.para(
      'Each line is assigned to the target’s owner, else the account owner’s manager, else the fallback reviewer, else the control ' +
        'owner — skipping anyone who is the subject of the access or granted it. Reassignments are recorded with who, when and why.',
    );
    pdf.table(
      [
        { header: 'Reviewer', width: 3, value: (r) => r.reviewer },
        { header: 'Lines', width: 1, value: (r) => formatCount(r.lines), align: 'right' },
        { header: 'Privileged', width: 1, value: (r) => formatCount(r.privileged), align: 'right' },
        { header: 'Decided', width: 1, value: (r) => formatCount(r.decided), align: 'right' },
        {
          header: 'Signed off',
          width: 1,
          value: (r) => (r.signedOff ? 'yes' : 'no'),
          color: (r) => (r.signedOff ? COLORS.ok : COLORS.warn),
        },
      ],
      data.reviewers,
      { caption: 'Reviewers' },
    );
    const ind = data.independence;
    pdf.heading('Independence checks');
    pdf.keyValues([
      ['Lines checked', formatCount(ind.checks)],
      [
        'Self-review avoided',
        `${ind.conflictsAvoided.selfReview} line(s) passed over a reviewer who holds the access`,
      ],
      [
        'Grantor review avoided',
        `${ind.conflictsAvoided.grantor} line(s) passed over the reviewer who granted the access`,
      ],
      ['Unresolved (no independent reviewer)', formatCount(ind.unresolved.length)],
      ['Reassignments to a conflicted reviewer', formatCount(ind.reassignedToConflicted)],
    ]);
    pdf.heading(`Reassignment trail (${ind.reassignments.length})`);
    pdf.table(
      [
        { header: 'When', width: 2, value: (r) => fmtTime(r.at) },
        { header: 'Item', width: 1.9, value: (r) => r.itemId, mono: true },
        { header: 'From', width: 2, value: (r) => r.from },
        { header: 'To', width: 2, value: (r) => r.to },
        { header: 'By', width: 2, value: (r) => r.by },
        { header: 'Reason', width: 4, value: (r) => r.reason },
      ],
      ind.reassignments,
      { caption: 'Reassignments', emptyText: 'No reassignments.' },
    );

    // 5. Entitlements (landscape)
    pdf.section('Entitlements', 'landscape');
    pdf.para(
      `${data.lines.length} lines: every account × effective entitlement. The CSV export has every column of the data dictionary; ` +
        'this table shows the columns a reviewer decides on. Evidence refs are audit-log leaf indices of first and last use.',
      { size: 8 },
    );
    pdf.table(entitlementColumns(), data.lines, { caption: 'Entitlements', fontSize: 6.6 });

    // 6. Privileged
    pdf.section('Privileged access', 'landscape');
    pdf.para(
      'Privileged lines (administrative roles and privileged tools) are reviewed with stricter rules: a rationale is required for ' +
        'every decision, the grant must carry an approval reference, and unused privilege is flagged as excessive.',
      { size: 8 },
    );
    pdf.table(privilegedColumns(), pick(data.privilegedItemIds), {
      caption: 'Privileged access',
      fontSize: 6.8,
      emptyText: 'No privileged access.',
    });

    // 7. Exceptions
    pdf.section('Exceptions and remediation');
    const exCounts = new Map<string, number>();
    for (const e of data.exceptions) exCounts.set(e.kind, (exCounts.get(e.kind) ?? 0) + 1);
    pdf.table(
      [
        { header: 'Exception', width: 4, value: (r) => r[0].replace(/_/g, ' ') },
        { header: 'Count', width: 1, value: (r) => formatCount(r[1]), align: 'right' },
      ],
      [...exCounts].sort((a, b) => (a[0] < b[0] ? -1 : 1)),
      { emptyText: 'No exceptions.' },
    );
    // Undecided lines are one exception each in the JSON and CSV; here they are counted per
    // reviewer so the list stays readable while a campaign is open.
    const undecided = new Map<string, number>();
    for (const l of data.lines)
      if (l.decision === 'pending') undecided.set(l.reviewer, (undecided.get(l.reviewer) ?? 0) + 1);
    const listed = [
      ...[...undecided]
        .sort((a, b) => (a[0] < b[0] ? -1 : 1))
        .map(([reviewer, n]) => ({
          kind: 'undecided',
          itemId: null,
          detail: `${n} line(s) without a decision, assigned to ${reviewer}`,
        })),
      ...data.exceptions.filter((e) => e.kind !== 'undecided'),
    ];
    pdf.heading(`All exceptions (${data.exceptions.length})`);
    pdf.table(
      [
        { header: 'Kind', width: 2, value: (r) => r.kind.replace(/_/g, ' ') },
        { header: 'Item', width: 1.9, value: (r) => r.itemId ?? '—', mono: true },
        { header: 'Detail', width: 7, value: (r) => r.detail },
      ],
      listed,
      { caption: 'Exceptions', emptyText: 'No exceptions.' },
    );
    const remediation = data.lines.filter((l) => l.decision === 'revoke' || l.decision === 'modify');
    pdf.heading(`Remediation (${remediation.length})`);
    pdf.table(
      [
        { header: 'Item', width: 1.9, value: (l) => l.itemId, mono: true },
        { header: 'Account', width: 2, value: (l) => l.subject },
        { header: 'Decision', width: 1, value: (l) => l.decision, color: decisionColor },
        { header: 'Decided', width: 1.3, value: (l) => fmtDate(l.decidedAt) },
        { header: 'SLA due', width: 1.3, value: (l) => fmtDate(l.slaDueAt) },
        { header: 'Carried out', width: 1.3, value: (l) => fmtDate(l.remediatedAt) },
        {
          header: 'SLA met',
          width: 0.9,
          value: (l) => (l.slaMet === null ? 'open' : l.slaMet ? 'yes' : 'no'),
          color: (l) => (l.slaMet === false ? COLORS.bad : undefined),
        },
        { header: 'Reference', width: 2, value: (l) => l.remediationRef ?? '—' },
        { header: 'Verified absent', width: 1.3, value: (l) => fmtDate(l.verifiedAbsentAt) },
      ],
      remediation,
      { caption: 'Remediation', emptyText: 'No revocations or changes were decided.' },
    );

    // 8. Launch vs completion
    pdf.section('Access at launch and after remediation');
    const lc = data.launchVsCompletion;
    pdf.table(
      [
        { header: 'Measure', width: 3, value: (r: string[]) => r[0]! },
        { header: 'At launch', width: 2, value: (r: string[]) => r[1]!, align: 'right' },
        { header: 'After remediation', width: 2, value: (r: string[]) => r[2]!, align: 'right' },
      ],
      [
        [
          'Snapshot as of',
          fmtTime(lc.launch.asOf),
          lc.completion ? fmtTime(lc.completion.asOf) : 'not taken yet',
        ],
        [
          'Entitlement lines',
          formatCount(lc.launch.lines),
          lc.completion ? formatCount(lc.completion.lines) : '—',
        ],
        [
          'Privileged lines',
          formatCount(lc.launch.privileged),
          lc.completion ? formatCount(lc.completion.privileged) : '—',
        ],
        ['Revocations verified absent', '—', formatCount(lc.revokedVerifiedAbsent)],
        ['Revocations still present', '—', lc.completion ? formatCount(lc.revokedStillPresent.length) : '—'],
      ],
      { fontSize: 8.5 },
    );
    pdf.keyValues([
      ['Launch snapshot SHA-256', lc.launch.snapshotHash],
      ['Completion snapshot SHA-256', lc.completion?.snapshotHash ?? 'not taken yet'],
    ]);

    // 9. Sign-off
    pdf.section('Sign-off');
    pdf.para(
      'Each attestation is sealed: seal = SHA-256 of the RFC 8785 canonical JSON of {campaignId, role, signer, signedAt, statement, ' +
        'reviewDataHash}, where reviewDataHash covers the launch snapshot hash and the decision in force on every line at signing time.',
    );
    pdf.keyValues([['Review data hash now', data.reviewDataHash]]);
    pdf.doc.moveDown(0.5);
    const expected = [
      ...data.reviewers.map((r) => ({ role: 'reviewer' as const, who: r.reviewer })),
      { role: 'control_owner' as const, who: data.scope.settings.controlOwner },
    ];
    for (const e of expected) {
      const so = data.signoffs.find((x) => x.role === e.role && x.signer === e.who);
      pdf.ensureSpace(86);
      const y = pdf.doc.y;
      pdf.doc
        .roundedRect(48, y, pdf.pageWidth, so ? 74 : 34, 3)
        .lineWidth(0.6)
        .strokeColor(so ? COLORS.ok : COLORS.rule)
        .stroke();
      pdf.doc.y = y + 7;
      pdf.doc.x = 56;
      pdf.doc
        .font('bold')
        .fontSize(9)
        .fillColor(COLORS.ink)
        .text(`${e.role === 'reviewer' ? 'Reviewer' : 'Control owner'}: ${e.who}`, 56, y + 7, {
          width: pdf.pageWidth - 16,
        });
      if (!so) {
        pdf.doc
          .font('italic')
          .fontSize(8.5)
          .fillColor(COLORS.warn)
          .text('Not signed.', 56, pdf.doc.y + 1);
        pdf.doc.y = y + 42;
        continue;
      }
      pdf.doc
        .font('regular')
        .fontSize(8)
        .fillColor(COLORS.ink)
        .text(`Signed ${fmtTime(so.signedAt)} — “${so.statement}”`, 56, pdf.doc.y + 2, {
          width: pdf.pageWidth - 16,
        });
      pdf.doc
        .font('mono')
        .fontSize(7)
        .fillColor(COLORS.muted)
        .text(`review data ${so.reviewDataHash}`, 56, pdf.doc.y + 3);
      pdf.doc.text(`seal        ${so.seal}`, 56, pdf.doc.y + 1);
      pdf.doc.y = y + 82;
    }
    pdf.doc.x = 48;

    // 10. Appendix
    pdf.section('Appendix');
    pdf.heading('A. Data dictionary (entitlement table and CSV)');
    pdf.table(
      [
        { header: 'Column', width: 2, value: (r) => r.header },
        { header: 'Meaning', width: 7, value: (r) => r.meaning },
      ],
      ENTITLEMENT_DICTIONARY,
      { caption: 'Data dictionary', fontSize: 7.5 },
    );
    pdf.heading(`B. Decision history (${data.decisionHistory.length})`);
    pdf.table(
      [
        { header: 'When', width: 1.8, value: (d) => fmtTime(d.decidedAt) },
        { header: 'Item', width: 1.9, value: (d) => d.itemId, mono: true },
        { header: 'By', width: 1.8, value: (d) => d.decidedBy },
        { header: 'Decision', width: 1, value: (d) => d.decision },
        { header: 'Rationale', width: 5, value: (d) => d.rationale + (d.modifyTo ? ` → ${d.modifyTo}` : '') },
      ],
      data.decisionHistory,
      { caption: 'Decision history', emptyText: 'No decisions recorded yet.' },
    );
    pdf.heading('C. Source queries');
    for (const src of data.scope.sources) {
      pdf.doc.font('bold').fontSize(8).fillColor(COLORS.ink);
      pdf.ensureSpace(40);
      pdf.doc.text(`${src.name} — ${src.rows} rows`, 48, pdf.doc.y);
      pdf.doc.font('mono').fontSize(6.5).fillColor(COLORS.muted);
      pdf.ensureSpace(Math.min(pdf.doc.heightOfString(src.query, { width: pdf.pageWidth }), 300));
      pdf.doc.text(src.query, 48, pdf.doc.y + 2, { width: pdf.pageWidth });
      pdf.doc.moveDown(0.6);
    }
    pdf.heading('D. How to verify this report');
    pdf.bullets([
      `Data hash: sha256sum access-review.json must print ${dataHash} — the value in every footer of this document.`,
      'The JSON is RFC 8785 canonical: re-canonicalising it with any JCS implementation gives the same bytes.',
      `Population: re-run the source queries (section C) against the audit log bounded by tree size ${data.scope.auditLog.treeSize}; the row counts must equal the control totals in section 2.`,
      'Audit-log root: the root hash in section 2 must equal the log’s root at that tree size (GET /log/proof/consistency from a signed checkpoint, or `auditgate verify-log`).',
      'Evidence refs: each leaf index can be fetched with GET /log/entries and proven with GET /log/proof/inclusion.',
      'Sign-off seals: recompute SHA-256 over the canonical JSON of the signed fields listed in section 9; each must equal the printed seal.',
      'Re-performance: `npx auditgate report access-review --period ' +
        data.period.label +
        ' --json FILE` on the same data gives the same data hash.',
    ]);
  });
}

function entitlementColumns(): Column<ReportLine>[] {
  return [
    { header: 'Item', width: 1.75, value: (l) => l.itemId, mono: true },
    { header: 'Target', width: 1.1, value: (l) => l.target },
    {
      header: 'Account',
      width: 1.9,
      value: (l) => `${l.subject}\n${displayAccountId(l.accountId, l.subject)}`.trim(),
    },
    {
      header: 'Person',
      width: 1.4,
      value: (l) => l.person ?? '(none)',
      color: (l) => (l.person ? undefined : COLORS.bad),
    },
    { header: 'Type', width: 0.85, value: (l) => l.identityType },
    { header: 'Entitlement', width: 2, value: (l) => l.entitlement, bold: (l) => l.privileged },
    { header: 'Grant', width: 1.2, value: (l) => `${l.grantPath}${l.grantRef ? `\n${l.grantRef}` : ''}` },
    {
      header: 'Auth / MFA',
      width: 0.9,
      value: (l) => `${l.authMethod}${l.mfa === null ? '' : l.mfa ? ' / MFA' : ' / no MFA'}`,
    },
    { header: 'Last used', width: 1.25, value: (l) => fmtDate(l.lastUsedAt) },
    {
      header: 'Days inact.',
      width: 0.75,
      value: (l) => (l.daysInactive === null ? '—' : String(l.daysInactive)),
      align: 'right',
    },
    { header: 'Calls', width: 0.75, value: (l) => formatCount(l.callsInPeriod), align: 'right' },
    {
      header: 'Flags',
      width: 1.5,
      value: (l) => flagText(l.flags),
      color: (l) => (l.flags.some((f) => f !== 'new') ? COLORS.warn : undefined),
    },
    { header: 'Reviewer', width: 1.3, value: (l) => l.reviewer },
    {
      header: 'Decision',
      width: 1.1,
      value: (l) => l.decision,
      color: decisionColor,
      bold: (l) => l.decision !== 'keep',
    },
    { header: 'Rationale', width: 2.6, value: (l) => l.rationale ?? '' },
  ];
}

function privilegedColumns(): Column<ReportLine>[] {
  return [
    { header: 'Item', width: 1.75, value: (l) => l.itemId, mono: true },
    { header: 'Target', width: 1.2, value: (l) => l.target },
    { header: 'Account', width: 1.8, value: (l) => l.subject },
    {
      header: 'Person',
      width: 1.4,
      value: (l) => l.person ?? '(none)',
      color: (l) => (l.person ? undefined : COLORS.bad),
    },
    { header: 'Entitlement', width: 2.1, value: (l) => l.entitlement, bold: () => true },
    { header: 'Granted at / by', width: 1.8, value: (l) => `${fmtDate(l.grantedAt)}\n${l.grantedBy ?? '—'}` },
    {
      header: 'Approval',
      width: 1.1,
      value: (l) => l.approvalRef ?? 'none',
      color: (l) => (l.approvalRef ? undefined : COLORS.bad),
    },
    { header: 'Last used', width: 1.2, value: (l) => fmtDate(l.lastUsedAt) },
    { header: 'Calls', width: 0.7, value: (l) => formatCount(l.callsInPeriod), align: 'right' },
    { header: 'Flags', width: 1.5, value: (l) => flagText(l.flags.filter((f) => f !== 'privileged')) },
    { header: 'Reviewer', width: 1.3, value: (l) => l.reviewer },
    { header: 'Decision', width: 1.1, value: (l) => l.decision, color: decisionColor, bold: () => true },
    { header: 'Rationale', width: 2.8, value: (l) => l.rationale ?? '' },
  ];
}

/** The account id under the subject, unless it says nothing more (IdP accounts are issuer#subject). */
function displayAccountId(accountId: string, subject: string): string {
  if (accountId === subject || accountId === `#${subject}`) return '';
  return accountId.endsWith(`#${subject}`) ? accountId.slice(0, -subject.length - 1) : accountId;
}

const FLAG_MEANINGS: Record<Flag, (d: AccessReviewData) => string> = {
  orphaned: () => 'No accountable person recorded for the account (service keys need an owner).',
  dormant: (d) =>
    `No use for ${d.scope.settings.dormantDays} days or more before the snapshot (or never used).`,
  shared_credential: (d) =>
    `The credential was used from ${d.scope.settings.sharedAddressThreshold} or more client addresses within one hour.`,
  privileged: () => 'Administrative role or a tool marked privileged on its target.',
  new: () => 'Not in the previous review (or created during this period when there was none).',
  excessive: () => 'Privileged access that was not used during the period.',
  no_justification: () => 'Privileged grant without an approval reference.',
};

function conclusion(d: AccessReviewData): string {
  const s = d.summary;
  const parts = [
    `This review covers ${s.identities.total} identities holding ${s.entitlements} entitlement lines on ${s.targets} targets as of ${fmtTime(d.asOf)}.`,
    d.status === 'completed'
      ? `All lines were decided (${s.decisions.keep} kept, ${s.decisions.revoke} revoked, ${s.decisions.modify} modified) and the review was signed off.`
      : `${s.decisions.pending} of ${s.entitlements} lines await a decision; the review is open.`,
  ];
  if (s.exceptions) parts.push(`${s.exceptions} exception(s) are listed in section 7.`);
  return parts.join(' ');
}
