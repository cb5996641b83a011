// The CC7.2 activity and anomaly report as a PDF, rendered from its canonical JSON.
import type { ActivityReportData } from '../activity.ts';
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

export const ACTIVITY_SECTIONS = [
  'Summary',
  'Activity over time',
  'Activity per target',
  'Anomalies',
  'Denied and refused calls',
  'New identities and tools',
  'Privileged invocations',
  'Off-hours activity',
  'Scope and method',
];

export async function renderActivityPdf(
  d: ActivityReportData,
  dataHash: string,
  run: RunInfo,
): Promise<Buffer> {
  const meta: DocMeta = {
    title: d.title,
    shortTitle: `auditgate · ${d.title}`,
    reportId: d.reportId,
    dataHash,
    generatedAt: run.generatedAt,
    subject: `SOC 2 CC7.2/CC7.3 monitoring evidence, period ${d.period.label}`,
  };
  return renderDocument(meta, (pdf) => {
    pdf.cover({
      kicker: 'SOC 2 evidence · monitoring',
      title: d.title,
      subtitle:
        'MCP traffic through auditgate: volumes, refusals, new identities and tools, privileged use and off-hours activity.',
      facts: [
        ['Report id', d.reportId],
        periodFact(d.period),
        ...provenanceFacts(run, d.generator, d.scope.auditLog.treeSize, dataHash),
      ],
      controls: d.controls,
      contents: ACTIVITY_SECTIONS,
      notice:
        'Rendered from the canonical JSON (RFC 8785) whose SHA-256 is printed above and in every footer. All figures are SQL aggregates over the audit log bounded by the tree size above.',
    });

    const t = d.totals;
    pdf.section('Summary');
    pdf.tiles([
      { label: 'Requests', value: formatCount(t.requests) },
      { label: 'Refused', value: formatCount(t.refused), tone: t.refused ? 'warn' : 'ok' },
      { label: 'Errors', value: formatCount(t.errors), tone: t.errors ? 'warn' : 'ok' },
      {
        label: 'Anomalies',
        value: formatCount(d.anomalies.length),
        tone: d.anomalies.some((a) => a.severity === 'high') ? 'bad' : 'ok',
      },
      { label: 'Identities active', value: formatCount(t.identities) },
      { label: 'Sessions', value: formatCount(t.sessions) },
      { label: 'Targets', value: formatCount(t.targets) },
      { label: 'Tools called', value: formatCount(t.toolsCalled) },
    ]);
    pdf.heading('Audit-log events by type');
    pdf.table(
      [
        { header: 'Event', width: 4, value: (r) => r.event },
        { header: 'Entries', width: 2, value: (r) => formatCount(r.n), align: 'right' },
      ],
      d.byEvent,
      { fontSize: 8 },
    );
    if (d.runExceptions.length) {
      pdf.heading('Schedule exceptions');
      pdf.table(
        [
          { header: 'Job', width: 2, value: (r) => r.job },
          { header: 'Expected', width: 2, value: (r) => fmtTime(r.expectedAt) },
          { header: 'Status', width: 1, value: (r) => r.status, color: () => COLORS.bad },
          { header: 'Detail', width: 5, value: (r) => r.detail },
        ],
        d.runExceptions,
      );
    }

    pdf.section('Activity over time');
    pdf.timeChart({
      title: 'Requests per day (UTC)',
      labels: d.daily.map((x) => x.day.slice(5)),
      series: [
        { name: 'requests', values: d.daily.map((x) => x.requests), color: COLORS.series[0]! },
        { name: 'refused', values: d.daily.map((x) => x.refused), color: COLORS.series[3]! },
      ],
    });
    pdf.timeChart({
      title: 'Errors per day (UTC)',
      labels: d.daily.map((x) => x.day.slice(5)),
      series: [{ name: 'JSON-RPC errors', values: d.daily.map((x) => x.errors), color: COLORS.series[7]! }],
      height: 110,
    });

    pdf.section('Activity per target');
    pdf.barChart({
      title: 'Requests per target',
      rows: d.perTarget.map((x) => ({ label: x.target, values: [x.requests, x.refused] })),
      series: [
        { name: 'requests', color: COLORS.series[0]! },
        { name: 'refused', color: COLORS.series[3]! },
      ],
    });
    pdf.table(
      [
        { header: 'Target', width: 2.4, value: (r) => r.target },
        { header: 'Requests', width: 1.2, value: (r) => formatCount(r.requests), align: 'right' },
        { header: 'Refused', width: 1, value: (r) => formatCount(r.refused), align: 'right' },
        { header: 'Errors', width: 1, value: (r) => formatCount(r.errors), align: 'right' },
        { header: 'Identities', width: 1, value: (r) => formatCount(r.identities), align: 'right' },
        { header: 'Tools', width: 0.8, value: (r) => formatCount(r.tools), align: 'right' },
        {
          header: 'Avg latency ms',
          width: 1.2,
          value: (r) => (r.avgLatencyMs === null ? '—' : r.avgLatencyMs.toFixed(1)),
          align: 'right',
        },
        {
          header: 'Max latency ms',
          width: 1.2,
          value: (r) => (r.maxLatencyMs === null ? '—' : r.maxLatencyMs.toFixed(1)),
          align: 'right',
        },
      ],
      d.perTarget,
      { caption: 'Per target' },
    );
    pdf.heading('Most-called tools');
    pdf.table(
      [
        { header: 'Target', width: 2, value: (r) => r.target },
        { header: 'Tool', width: 3, value: (r) => r.tool },
        { header: 'Calls', width: 1, value: (r) => formatCount(r.calls), align: 'right' },
        { header: 'Identities', width: 1, value: (r) => formatCount(r.identities), align: 'right' },
      ],
      d.tools.slice(0, 30),
      { caption: 'Most-called tools' },
    );

    pdf.section('Anomalies');
    pdf.para(
      'Each anomaly cites the audit-log leaf where it starts, so it can be fetched and proven with an inclusion proof.',
    );
    pdf.table(
      [
        {
          header: 'Severity',
          width: 1,
          value: (r) => r.severity,
          color: (r) =>
            r.severity === 'high' ? COLORS.bad : r.severity === 'medium' ? COLORS.warn : COLORS.muted,
          bold: (r) => r.severity === 'high',
        },
        { header: 'Kind', width: 1.8, value: (r) => r.kind.replace(/_/g, ' ') },
        { header: 'At', width: 1.8, value: (r) => fmtTime(r.at) },
        { header: 'Identity', width: 2, value: (r) => r.subject ?? '—' },
        { header: 'Detail', width: 4, value: (r) => r.detail },
        {
          header: 'Leaf',
          width: 1,
          value: (r) => (r.leaf === null ? '—' : String(r.leaf)),
          align: 'right',
          mono: true,
        },
      ],
      d.anomalies,
      { caption: 'Anomalies', emptyText: 'No anomalies detected.' },
    );

    pdf.section('Denied and refused calls');
    pdf.table(
      [
        { header: 'Identity', width: 2.2, value: (r) => r.subject },
        { header: 'Target', width: 1.5, value: (r) => r.target || '—' },
        { header: 'Tool', width: 1.6, value: (r) => r.tool || '—' },
        { header: 'Rule / reason', width: 2, value: (r) => r.rule || '—' },
        { header: 'Count', width: 0.8, value: (r) => formatCount(r.n), align: 'right' },
        { header: 'First', width: 1.6, value: (r) => fmtTime(r.firstAt) },
        { header: 'Last', width: 1.6, value: (r) => fmtTime(r.lastAt) },
      ],
      d.denials,
      { caption: 'Denied and refused calls', emptyText: 'No calls were refused.' },
    );

    pdf.section('New identities and tools');
    pdf.heading(`Identities first seen in the period (${d.firstSeenIdentities.length})`);
    pdf.table(
      [
        { header: 'Account', width: 3, value: (r) => r.account },
        { header: 'Subject', width: 2.5, value: (r) => r.subject },
        { header: 'Auth', width: 1, value: (r) => r.authMethod },
        { header: 'First seen', width: 1.8, value: (r) => fmtTime(r.firstAt) },
        { header: 'Leaf', width: 1, value: (r) => String(r.firstLeaf), align: 'right', mono: true },
      ],
      d.firstSeenIdentities,
      { caption: 'New identities', emptyText: 'No new identities.' },
    );
    pdf.heading(`Tools first called in the period (${d.firstSeenTools.length})`);
    pdf.table(
      [
        { header: 'Target', width: 2, value: (r) => r.target },
        { header: 'Tool', width: 2.5, value: (r) => r.tool },
        { header: 'First caller', width: 2.5, value: (r) => r.subject },
        { header: 'First called', width: 1.8, value: (r) => fmtTime(r.firstAt) },
        { header: 'Leaf', width: 1, value: (r) => String(r.firstLeaf), align: 'right', mono: true },
      ],
      d.firstSeenTools,
      { caption: 'New tools', emptyText: 'No new tools.' },
    );

    pdf.section('Privileged invocations');
    pdf.table(
      [
        { header: 'Identity', width: 2.5, value: (r) => r.subject },
        { header: 'Target', width: 1.6, value: (r) => r.target },
        { header: 'Tool', width: 1.8, value: (r) => r.tool, bold: () => true },
        { header: 'Calls', width: 0.8, value: (r) => formatCount(r.n), align: 'right' },
        { header: 'First', width: 1.6, value: (r) => fmtTime(r.firstAt) },
        { header: 'Last', width: 1.6, value: (r) => fmtTime(r.lastAt) },
      ],
      d.privilegedCalls,
      {
        caption: 'Privileged invocations',
        emptyText: 'No privileged tools were called (or none are configured as privileged).',
      },
    );

    pdf.section('Off-hours activity');
    pdf.keyValues([
      [
        'Business hours (UTC)',
        `${d.scope.businessHoursUtc.start}:00 – ${d.scope.businessHoursUtc.end}:00, Monday to Friday`,
      ],
      ['Requests per hour', `mean ${d.offHours.meanPerHour}, standard deviation ${d.offHours.stddevPerHour}`],
      ['Spike rule', d.scope.spikeRule],
    ]);
    pdf.heading(`Off-hours spikes (${d.offHours.spikes.length})`);
    pdf.table(
      [
        { header: 'Hour (UTC)', width: 2, value: (r) => `${r.hour.replace('T', ' ')}:00` },
        { header: 'Requests', width: 1, value: (r) => formatCount(r.requests), align: 'right' },
        { header: 'Threshold', width: 1, value: (r) => formatCount(r.threshold), align: 'right' },
      ],
      d.offHours.spikes,
      { caption: 'Off-hours spikes', emptyText: 'No off-hours spikes.' },
    );
    pdf.heading('Identities active off hours');
    pdf.table(
      [
        { header: 'Identity', width: 4, value: (r) => r.subject },
        { header: 'Requests', width: 1, value: (r) => formatCount(r.requests), align: 'right' },
        { header: 'Days', width: 1, value: (r) => formatCount(r.days), align: 'right' },
      ],
      d.offHours.accounts,
      { caption: 'Off-hours identities', emptyText: 'No off-hours activity.' },
    );

    pdf.section('Scope and method');
    pdf.keyValues([
      ['Audit log tree size', d.scope.auditLog.treeSize.toLocaleString('en-US')],
      ['Audit log root (hex)', d.scope.auditLog.rootHex],
    ]);
    pdf.table(
      [
        { header: 'Query', width: 3, value: (r) => r.name },
        { header: 'Rows', width: 1, value: (r) => formatCount(r.rows), align: 'right' },
        { header: 'Query SHA-256', width: 6, value: (r) => r.queryHash, mono: true },
      ],
      d.scope.sources,
      { caption: 'Queries' },
    );
    for (const s of d.scope.sources) {
      pdf.ensureSpace(40);
      pdf.doc.font('bold').fontSize(8).fillColor(COLORS.ink).text(s.name, 48, pdf.doc.y);
      pdf.doc
        .font('mono')
        .fontSize(6.5)
        .fillColor(COLORS.muted)
        .text(s.query, 48, pdf.doc.y + 2, { width: pdf.pageWidth });
      pdf.doc.moveDown(0.5);
    }
  });
}
