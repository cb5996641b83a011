// Gateway activity and anomalies (CC7.2 / CC7.3) for one period: volumes over time and per
// target, denials, first-seen identities and tools, privileged invocations and off-hours spikes.
// The server aggregates in SQL (ActivitySource); this module only shapes and derives.
import type { LogCheckpointRef, SourceDescription } from './access-types.ts';
import type { Period } from './period.ts';
import type { RunExceptionRecord } from './run-exceptions.ts';

export const ACTIVITY_SCHEMA = 'auditgate.activity/1';

export interface Sourced2<T> {
  rows: T[];
  source: SourceDescription;
}

export interface EventCount {
  event: string;
  n: number;
}
export interface DayCount {
  day: string;
  requests: number;
  refused: number;
  errors: number;
}
export interface TargetActivity {
  target: string;
  requests: number;
  refused: number;
  errors: number;
  identities: number;
  tools: number;
  avgLatencyMs: number | null;
  maxLatencyMs: number | null;
}
export interface ToolActivity {
  target: string;
  tool: string;
  calls: number;
  identities: number;
}
export interface DenialGroup {
  subject: string;
  target: string;
  tool: string;
  rule: string;
  n: number;
  firstAt: string;
  lastAt: string;
  firstLeaf: number;
}
export interface FirstSeenIdentity {
  account: string;
  subject: string;
  authMethod: string;
  firstAt: string;
  firstLeaf: number;
}
export interface FirstSeenTool {
  target: string;
  tool: string;
  firstAt: string;
  firstLeaf: number;
  subject: string;
}
export interface PrivilegedCallGroup {
  subject: string;
  target: string;
  tool: string;
  n: number;
  firstAt: string;
  lastAt: string;
  firstLeaf: number;
}
export interface HourCount {
  hour: string; // YYYY-MM-DDTHH (UTC)
  requests: number;
}
export interface OffHoursAccount {
  subject: string;
  requests: number;
  days: number;
}

export interface ActivitySource {
  checkpoint(asOf: string): Promise<LogCheckpointRef>;
  eventCounts(p: Period, upTo: LogCheckpointRef): Promise<Sourced2<EventCount>>;
  daily(p: Period, upTo: LogCheckpointRef): Promise<Sourced2<DayCount>>;
  perTarget(p: Period, upTo: LogCheckpointRef): Promise<Sourced2<TargetActivity>>;
  tools(p: Period, upTo: LogCheckpointRef): Promise<Sourced2<ToolActivity>>;
  denials(p: Period, upTo: LogCheckpointRef): Promise<Sourced2<DenialGroup>>;
  firstSeenIdentities(p: Period, upTo: LogCheckpointRef): Promise<Sourced2<FirstSeenIdentity>>;
  firstSeenTools(p: Period, upTo: LogCheckpointRef): Promise<Sourced2<FirstSeenTool>>;
  privilegedCalls(p: Period, upTo: LogCheckpointRef): Promise<Sourced2<PrivilegedCallGroup>>;
  hourly(p: Period, upTo: LogCheckpointRef): Promise<Sourced2<HourCount>>;
  offHoursAccounts(
    p: Period,
    upTo: LogCheckpointRef,
    hours: { start: number; end: number },
  ): Promise<Sourced2<OffHoursAccount>>;
  distinct(
    p: Period,
    upTo: LogCheckpointRef,
  ): Promise<Sourced2<{ identities: number; sessions: number; targets: number }>>;
}

export interface Anomaly {
  kind: 'denial_burst' | 'first_seen_identity' | 'first_seen_tool' | 'privileged_call' | 'off_hours_spike';
  severity: 'high' | 'medium' | 'low';
  at: string;
  subject: string | null;
  detail: string;
  leaf: number | null;
}

export interface ActivityReportData {
  schema: typeof ACTIVITY_SCHEMA;
  reportId: string;
  title: string;
  period: Period;
  generator: { name: string; version: string };
  controls: Array<{ id: string; topic: string }>;
  scope: {
    auditLog: { treeSize: number; rootHex: string };
    sources: SourceDescription[];
    businessHoursUtc: { start: number; end: number };
    spikeRule: string;
  };
  totals: {
    events: number;
    requests: number;
    refused: number;
    errors: number;
    identities: number;
    sessions: number;
    targets: number;
    toolsCalled: number;
  };
  byEvent: EventCount[];
  daily: DayCount[];
  perTarget: TargetActivity[];
  tools: ToolActivity[];
  denials: DenialGroup[];
  firstSeenIdentities: FirstSeenIdentity[];
  firstSeenTools: FirstSeenTool[];
  privilegedCalls: PrivilegedCallGroup[];
  offHours: {
    spikes: Array<HourCount & { threshold: number }>;
    accounts: OffHoursAccount[];
    meanPerHour: number;
    stddevPerHour: number;
  };
  anomalies: Anomaly[];
  runExceptions: RunExceptionRecord[];
}

export const ACTIVITY_CONTROLS = [
  {
    id: 'CC7.2',
    topic:
      'Monitoring of system components for anomalies: denied calls, new identities and tools, privileged use',
  },
  {
    id: 'CC7.3',
    topic: 'Evaluation of detected events: each anomaly listed with its audit-log evidence reference',
  },
];

/** Every day of the period, zeros included (a gap in a chart must mean no traffic, not no data). */
export function fillDays(p: Period, rows: DayCount[]): DayCount[] {
  const by = new Map(rows.map((r) => [r.day, r]));
  const out: DayCount[] = [];
  for (let t = Date.parse(p.start); t < Date.parse(p.end); t += 86_400_000) {
    const day = new Date(t).toISOString().slice(0, 10);
    out.push(by.get(day) ?? { day, requests: 0, refused: 0, errors: 0 });
  }
  return out;
}

const DENIAL_BURST = 20;

export async function buildActivityReport(
  source: ActivitySource,
  opts: {
    period: Period;
    generatorVersion: string;
    businessHours: { start: number; end: number };
    runExceptions: RunExceptionRecord[];
  },
): Promise<ActivityReportData> {
  const p = opts.period;
  const upTo = await source.checkpoint(p.end);
  const [ev, daily, perTarget, tools, denials, fsi, fst, priv, hourly, off, distinct] = await Promise.all([
    source.eventCounts(p, upTo),
    source.daily(p, upTo),
    source.perTarget(p, upTo),
    source.tools(p, upTo),
    source.denials(p, upTo),
    source.firstSeenIdentities(p, upTo),
    source.firstSeenTools(p, upTo),
    source.privilegedCalls(p, upTo),
    source.hourly(p, upTo),
    source.offHoursAccounts(p, upTo, opts.businessHours),
    source.distinct(p, upTo),
  ]);
  const sources = [ev, daily, perTarget, tools, denials, fsi, fst, priv, hourly, off, distinct].map(
    (s) => s.source,
  );

  // Off-hours spikes: hours outside business hours (or on weekends) whose volume exceeds the
  // mean + 3σ of all hours in the period, counting hours without traffic as zero.
  const hoursInPeriod = Math.max(1, Math.round((Date.parse(p.end) - Date.parse(p.start)) / 3_600_000));
  const total = hourly.rows.reduce((s, h) => s + h.requests, 0);
  const mean = total / hoursInPeriod;
  const sq =
    hourly.rows.reduce((s, h) => s + (h.requests - mean) ** 2, 0) +
    (hoursInPeriod - hourly.rows.length) * mean ** 2;
  const sd = Math.sqrt(sq / hoursInPeriod);
  const threshold = Math.ceil(mean + 3 * sd);
  const isOff = (hour: string) => {
    const d = new Date(`${hour}:00:00Z`);
    const h = d.getUTCHours();
    const dow = d.getUTCDay();
    return dow === 0 || dow === 6 || h < opts.businessHours.start || h >= opts.businessHours.end;
  };
  const spikes = hourly.rows
    .filter((h) => isOff(h.hour) && h.requests > threshold)
    .map((h) => ({ ...h, threshold }));

  const anomalies: Anomaly[] = [];
  for (const d of denials.rows.filter((d) => d.n >= DENIAL_BURST)) {
    anomalies.push({
      kind: 'denial_burst',
      severity: 'high',
      at: d.firstAt,
      subject: d.subject,
      detail: `${d.n} refused calls to ${d.target}/${d.tool || '(any)'} (${d.rule})`,
      leaf: d.firstLeaf,
    });
  }
  for (const f of fsi.rows) {
    anomalies.push({
      kind: 'first_seen_identity',
      severity: 'medium',
      at: f.firstAt,
      subject: f.subject,
      detail: `first activity of ${f.account} (${f.authMethod})`,
      leaf: f.firstLeaf,
    });
  }
  for (const f of fst.rows) {
    anomalies.push({
      kind: 'first_seen_tool',
      severity: 'low',
      at: f.firstAt,
      subject: f.subject,
      detail: `first call of ${f.target}/${f.tool}`,
      leaf: f.firstLeaf,
    });
  }
  for (const c of priv.rows) {
    anomalies.push({
      kind: 'privileged_call',
      severity: 'medium',
      at: c.firstAt,
      subject: c.subject,
      detail: `${c.n} call(s) of privileged ${c.target}/${c.tool}`,
      leaf: c.firstLeaf,
    });
  }
  for (const s of spikes) {
    anomalies.push({
      kind: 'off_hours_spike',
      severity: 'high',
      at: `${s.hour}:00:00.000Z`,
      subject: null,
      detail: `${s.requests} requests in one off-hours hour (threshold ${threshold})`,
      leaf: null,
    });
  }
  const sev = { high: 0, medium: 1, low: 2 };
  anomalies.sort(
    (a, b) =>
      sev[a.severity] - sev[b.severity] ||
      (a.at < b.at ? -1 : a.at > b.at ? 1 : 0) ||
      (a.detail < b.detail ? -1 : 1),
  );

  const count = (e: string) => ev.rows.filter((r) => r.event === e).reduce((s, r) => s + r.n, 0);
  const filled = fillDays(p, daily.rows);
  return {
    schema: ACTIVITY_SCHEMA,
    reportId: `ACT-${p.label}`,
    title: `Gateway activity and anomalies — ${p.label}`,
    period: p,
    generator: { name: 'auditgate', version: opts.generatorVersion },
    controls: ACTIVITY_CONTROLS,
    scope: {
      auditLog: { treeSize: upTo.size, rootHex: upTo.root },
      sources,
      businessHoursUtc: opts.businessHours,
      spikeRule:
        'an off-hours or weekend hour with more requests than mean + 3 standard deviations of all hours in the period',
    },
    totals: {
      events: ev.rows.reduce((s, r) => s + r.n, 0),
      requests: filled.reduce((s, d) => s + d.requests, 0),
      refused: count('mcp.refused'),
      errors: filled.reduce((s, d) => s + d.errors, 0),
      identities: distinct.rows[0]?.identities ?? 0,
      sessions: distinct.rows[0]?.sessions ?? 0,
      targets: distinct.rows[0]?.targets ?? 0,
      toolsCalled: tools.rows.length,
    },
    byEvent: ev.rows,
    daily: filled,
    perTarget: perTarget.rows,
    tools: tools.rows,
    denials: denials.rows,
    firstSeenIdentities: fsi.rows,
    firstSeenTools: fst.rows,
    privilegedCalls: priv.rows,
    offHours: { spikes, accounts: off.rows, meanPerHour: round2(mean), stddevPerHour: round2(sd) },
    anomalies,
    runExceptions: opts.runExceptions,
  };
}

const round2 = (x: number) => Math.round(x * 100) / 100;
