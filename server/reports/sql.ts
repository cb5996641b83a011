// The few places where report SQL differs between SQLite and PostgreSQL, and the IPE record of
// every query a report ran (text + bindings + hash), so auditors can re-run exactly that.
import { createHash } from 'node:crypto';
import { isPostgres, toInt, type Db } from '../db.ts';
import type { LogCheckpointRef, SourceDescription } from '../../reports/access-types.ts';
import type { AuditLog } from '../audit/log.ts';

/**
 * The tree size a report for data before `asOf` reads up to: the index of the first entry at or
 * after `asOf` (or the whole log when there is none yet). Every entry below it is before `asOf`,
 * so the bound never moves once the period is over — a record stamped inside the period but
 * appended after that first later entry is left out of every run alike — and the query is an
 * index range scan over the tail, not the whole period.
 */
export async function logBoundary(
  db: Db,
  log: Pick<AuditLog, 'syncIndex' | 'rootAt'>,
  asOf: string,
): Promise<LogCheckpointRef> {
  // Every entry below `indexed` has its audit_events row, so the aggregates see all of them.
  const indexed = await log.syncIndex();
  const r = await db('audit_events').where('ts', '>=', asOf).min({ m: 'idx' }).first();
  const size = r?.m === null || r?.m === undefined ? indexed : Math.min(indexed, toInt(r.m));
  return { size, root: Buffer.from(await log.rootAt(size)).toString('hex') };
}

/** audit_events.ts is timestamptz on PostgreSQL and ISO text on SQLite: UTC hour/day buckets as text. */
export function hourBucket(db: Db, col = 'ts'): string {
  return isPostgres(db) ? `to_char(${col} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24')` : `substr(${col}, 1, 13)`;
}

export function dayBucket(db: Db, col = 'ts'): string {
  return isPostgres(db) ? `to_char(${col} AT TIME ZONE 'UTC', 'YYYY-MM-DD')` : `substr(${col}, 1, 10)`;
}

/** Hour of day (0–23, UTC) as an integer expression. */
export function hourOfDay(db: Db, col = 'ts'): string {
  return isPostgres(db)
    ? `CAST(EXTRACT(HOUR FROM ${col} AT TIME ZONE 'UTC') AS integer)`
    : `CAST(substr(${col}, 12, 2) AS integer)`;
}

/** Day of week, 0 = Sunday … 6 = Saturday (UTC). */
export function dayOfWeek(db: Db, col = 'ts'): string {
  return isPostgres(db)
    ? `CAST(EXTRACT(DOW FROM ${col} AT TIME ZONE 'UTC') AS integer)`
    : `CAST(strftime('%w', ${col}) AS integer)`;
}

/** A timestamp as it comes back (Date from pg, text from SQLite) → ISO 8601 UTC with milliseconds. */
export function isoOut(v: unknown): string {
  if (v instanceof Date) return v.toISOString();
  if (typeof v === 'string') {
    const d = new Date(v.includes('T') || v.endsWith('Z') ? v : `${v.replace(' ', 'T')}Z`);
    if (!Number.isNaN(d.getTime())) return d.toISOString();
  }
  throw new TypeError(`expected a timestamp from the database, got ${JSON.stringify(v)}`);
}

export function isoOrNull(v: unknown): string | null {
  return v === null || v === undefined ? null : isoOut(v);
}

export const intOut = (v: unknown): number => (v === null || v === undefined ? 0 : toInt(v));

/** Runs one report query and returns its rows with the IPE description (query text, bindings, hash). */
export async function runQuery<T = Record<string, unknown>>(
  db: Db,
  name: string,
  sql: string,
  bindings: unknown[],
  asOf: string,
): Promise<{ rows: T[]; source: SourceDescription }> {
  const result = await db.raw(sql, bindings as any[]);
  const rows = (isPostgres(db) ? result.rows : result) as T[];
  const text = `${sql.replace(/\s+/g, ' ').trim()}\n-- bindings: ${JSON.stringify(bindings)}`;
  return {
    rows,
    source: {
      name,
      query: text,
      queryHash: createHash('sha256').update(text).digest('hex'),
      asOf,
      rows: rows.length,
    },
  };
}
