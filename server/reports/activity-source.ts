// ActivitySource in SQL over audit_events: every figure is an aggregate computed by the
// database, bounded by the period and by the tree size the report states.
import type { AuditLog } from '../audit/log.ts';
import type { Db } from '../db.ts';
import type { ActivitySource, Sourced2 } from '../../reports/activity.ts';
import type { LogCheckpointRef } from '../../reports/access-types.ts';
import type { Period } from '../../reports/period.ts';
import { ACCOUNT_SQL } from './access-source.ts';
import { dayBucket, dayOfWeek, hourBucket, hourOfDay, intOut, isoOut, runQuery, logBoundary } from './sql.ts';
import type { ReportsConfig } from './report-config.ts';

const REQUEST = "event = 'mcp.message' AND direction = 'client_to_upstream' AND kind = 'request'";
const WINDOW = 'idx < ? AND ts >= ? AND ts < ?';

export class SqlActivitySource implements ActivitySource {
  constructor(
    private readonly o: { db: Db; log: Pick<AuditLog, 'head' | 'rootAt' | 'syncIndex'>; config: ReportsConfig },
  ) {}

  private q<T>(name: string, sql: string, p: Period, upTo: LogCheckpointRef, extra: unknown[] = []) {
    return runQuery<Record<string, unknown>>(
      this.o.db,
      name,
      sql,
      [upTo.size, p.start, p.end, ...extra],
      p.end,
    ).then((r) => r as unknown as { rows: Record<string, unknown>[]; source: Sourced2<T>['source'] });
  }

  async checkpoint(asOf: string): Promise<LogCheckpointRef> {
    return logBoundary(this.o.db, this.o.log, asOf);
  }

  async eventCounts(p: Period, upTo: LogCheckpointRef) {
    const r = await this.q(
      'events by type',
      `SELECT event, COUNT(*) AS n FROM audit_events WHERE ${WINDOW} GROUP BY event ORDER BY event`,
      p,
      upTo,
    );
    return { rows: r.rows.map((x) => ({ event: String(x.event), n: intOut(x.n) })), source: r.source };
  }

  async daily(p: Period, upTo: LogCheckpointRef) {
    const day = dayBucket(this.o.db);
    const r = await this.q(
      'requests per day',
      `SELECT ${day} AS day,
              SUM(CASE WHEN ${REQUEST} THEN 1 ELSE 0 END) AS requests,
              SUM(CASE WHEN event = 'mcp.refused' THEN 1 ELSE 0 END) AS refused,
              SUM(CASE WHEN event = 'mcp.message' AND kind = 'error' THEN 1 ELSE 0 END) AS errors
       FROM audit_events WHERE ${WINDOW} GROUP BY ${day} ORDER BY 1`,
      p,
      upTo,
    );
    return {
      rows: r.rows.map((x) => ({
        day: String(x.day),
        requests: intOut(x.requests),
        refused: intOut(x.refused),
        errors: intOut(x.errors),
      })),
      source: r.source,
    };
  }

  async perTarget(p: Period, upTo: LogCheckpointRef) {
    const r = await this.q(
      'activity per target',
      `SELECT target,
              SUM(CASE WHEN ${REQUEST} THEN 1 ELSE 0 END) AS requests,
              SUM(CASE WHEN event = 'mcp.refused' THEN 1 ELSE 0 END) AS refused,
              SUM(CASE WHEN event = 'mcp.message' AND kind = 'error' THEN 1 ELSE 0 END) AS errors,
              COUNT(DISTINCT subject) AS identities,
              COUNT(DISTINCT CASE WHEN jsonrpc_method = 'tools/call' THEN name END) AS tools,
              AVG(CASE WHEN direction = 'upstream_to_client' THEN latency_ms END) AS avg_latency,
              MAX(CASE WHEN direction = 'upstream_to_client' THEN latency_ms END) AS max_latency
       FROM audit_events WHERE ${WINDOW} AND target IS NOT NULL GROUP BY target ORDER BY target`,
      p,
      upTo,
    );
    return {
      rows: r.rows.map((x) => ({
        target: String(x.target),
        requests: intOut(x.requests),
        refused: intOut(x.refused),
        errors: intOut(x.errors),
        identities: intOut(x.identities),
        tools: intOut(x.tools),
        avgLatencyMs: x.avg_latency === null ? null : Math.round(Number(x.avg_latency) * 100) / 100,
        maxLatencyMs: x.max_latency === null ? null : Math.round(Number(x.max_latency) * 100) / 100,
      })),
      source: r.source,
    };
  }

  async tools(p: Period, upTo: LogCheckpointRef) {
    const r = await this.q(
      'tool calls per target and tool',
      `SELECT target, name, COUNT(*) AS calls, COUNT(DISTINCT subject) AS identities
       FROM audit_events WHERE ${WINDOW} AND ${REQUEST} AND jsonrpc_method = 'tools/call' AND name IS NOT NULL
       GROUP BY target, name ORDER BY calls DESC, target, name`,
      p,
      upTo,
    );
    return {
      rows: r.rows.map((x) => ({
        target: String(x.target),
        tool: String(x.name),
        calls: intOut(x.calls),
        identities: intOut(x.identities),
      })),
      source: r.source,
    };
  }

  async denials(p: Period, upTo: LogCheckpointRef) {
    const r = await this.q(
      'refused and denied requests',
      `SELECT COALESCE(subject, '(unauthenticated)') AS subject, COALESCE(target, '') AS target, COALESCE(name, '') AS tool,
              COALESCE(rule, '') AS rule, COUNT(*) AS n, MIN(ts) AS first_ts, MAX(ts) AS last_ts, MIN(idx) AS first_idx
       FROM audit_events WHERE ${WINDOW} AND (event = 'mcp.refused' OR decision = 'deny')
       GROUP BY COALESCE(subject, '(unauthenticated)'), COALESCE(target, ''), COALESCE(name, ''), COALESCE(rule, '')
       ORDER BY n DESC, 1, 2, 3, 4`,
      p,
      upTo,
    );
    return {
      rows: r.rows.map((x) => ({
        subject: String(x.subject),
        target: String(x.target),
        tool: String(x.tool),
        rule: String(x.rule),
        n: intOut(x.n),
        firstAt: isoOut(x.first_ts),
        lastAt: isoOut(x.last_ts),
        firstLeaf: intOut(x.first_idx),
      })),
      source: r.source,
    };
  }

  async firstSeenIdentities(p: Period, upTo: LogCheckpointRef) {
    // Whole history up to the tree size: "first seen" means no earlier entry at all.
    const r = await runQuery<Record<string, unknown>>(
      this.o.db,
      'identities first seen in period',
      `SELECT account, subject, auth_method, first_ts, first_idx FROM (
         SELECT ${ACCOUNT_SQL} AS account, MIN(subject) AS subject, MIN(auth_method) AS auth_method, MIN(ts) AS first_ts, MIN(idx) AS first_idx
         FROM audit_events WHERE idx < ? AND subject IS NOT NULL AND event IN ('mcp.message', 'mcp.refused', 'mcp.session.open')
         GROUP BY ${ACCOUNT_SQL}) firsts
       WHERE first_ts >= ? AND first_ts < ? ORDER BY first_ts, account`,
      [upTo.size, p.start, p.end],
      p.end,
    );
    return {
      rows: r.rows.map((x) => ({
        account: String(x.account),
        subject: String(x.subject),
        authMethod: String(x.auth_method ?? ''),
        firstAt: isoOut(x.first_ts),
        firstLeaf: intOut(x.first_idx),
      })),
      source: r.source,
    };
  }

  async firstSeenTools(p: Period, upTo: LogCheckpointRef) {
    const r = await runQuery<Record<string, unknown>>(
      this.o.db,
      'tools first called in period',
      `SELECT f.target, f.name, f.first_ts, f.first_idx, e.subject FROM (
         SELECT target, name, MIN(ts) AS first_ts, MIN(idx) AS first_idx
         FROM audit_events WHERE idx < ? AND ${REQUEST} AND jsonrpc_method = 'tools/call' AND name IS NOT NULL
         GROUP BY target, name) f
       JOIN audit_events e ON e.idx = f.first_idx
       WHERE f.first_ts >= ? AND f.first_ts < ? ORDER BY f.first_ts, f.target, f.name`,
      [upTo.size, p.start, p.end],
      p.end,
    );
    return {
      rows: r.rows.map((x) => ({
        target: String(x.target),
        tool: String(x.name),
        firstAt: isoOut(x.first_ts),
        firstLeaf: intOut(x.first_idx),
        subject: String(x.subject ?? ''),
      })),
      source: r.source,
    };
  }

  async privilegedCalls(p: Period, upTo: LogCheckpointRef) {
    const pairs = Object.entries(this.o.config.targets).flatMap(([t, v]) =>
      v.privilegedTools.map((tool) => [t, tool] as const),
    );
    const cond = pairs.length ? pairs.map(() => '(target = ? AND name = ?)').join(' OR ') : '1 = 0';
    const r = await this.q(
      'privileged tool calls',
      `SELECT subject, target, name, COUNT(*) AS n, MIN(ts) AS first_ts, MAX(ts) AS last_ts, MIN(idx) AS first_idx
       FROM audit_events WHERE ${WINDOW} AND ${REQUEST} AND jsonrpc_method = 'tools/call' AND (${cond})
       GROUP BY subject, target, name ORDER BY n DESC, subject, target, name`,
      p,
      upTo,
      pairs.flat(),
    );
    return {
      rows: r.rows.map((x) => ({
        subject: String(x.subject),
        target: String(x.target),
        tool: String(x.name),
        n: intOut(x.n),
        firstAt: isoOut(x.first_ts),
        lastAt: isoOut(x.last_ts),
        firstLeaf: intOut(x.first_idx),
      })),
      source: r.source,
    };
  }

  async hourly(p: Period, upTo: LogCheckpointRef) {
    const hb = hourBucket(this.o.db);
    const r = await this.q(
      'requests per hour',
      `SELECT ${hb} AS hour, COUNT(*) AS n FROM audit_events WHERE ${WINDOW} AND ${REQUEST} GROUP BY ${hb} ORDER BY 1`,
      p,
      upTo,
    );
    return { rows: r.rows.map((x) => ({ hour: String(x.hour), requests: intOut(x.n) })), source: r.source };
  }

  async offHoursAccounts(p: Period, upTo: LogCheckpointRef, hours: { start: number; end: number }) {
    const h = hourOfDay(this.o.db);
    const dow = dayOfWeek(this.o.db);
    const day = dayBucket(this.o.db);
    const r = await this.q(
      'off-hours requests per identity',
      `SELECT subject, COUNT(*) AS n, COUNT(DISTINCT ${day}) AS days
       FROM audit_events WHERE ${WINDOW} AND ${REQUEST} AND subject IS NOT NULL
         AND (${h} < ? OR ${h} >= ? OR ${dow} IN (0, 6))
       GROUP BY subject ORDER BY n DESC, subject`,
      p,
      upTo,
      [hours.start, hours.end],
    );
    return {
      rows: r.rows.map((x) => ({ subject: String(x.subject), requests: intOut(x.n), days: intOut(x.days) })),
      source: r.source,
    };
  }

  async distinct(p: Period, upTo: LogCheckpointRef) {
    const r = await this.q(
      'distinct identities, sessions and targets',
      `SELECT COUNT(DISTINCT ${ACCOUNT_SQL}) AS identities, COUNT(DISTINCT session) AS sessions, COUNT(DISTINCT target) AS targets
       FROM audit_events WHERE ${WINDOW} AND subject IS NOT NULL AND event IN ('mcp.message', 'mcp.refused', 'mcp.session.open')`,
      p,
      upTo,
    );
    const x = r.rows[0] ?? {};
    return {
      rows: [{ identities: intOut(x.identities), sessions: intOut(x.sessions), targets: intOut(x.targets) }],
      source: r.source,
    };
  }
}
