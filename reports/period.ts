// Reporting periods: "2026-Q3", "2026-08", "2026", or an explicit "2026-07-01..2026-10-01".
// Always half-open [start, end) in UTC, so consecutive periods tile time without overlap.

export interface Period {
  /** As given (normalised): 2026-Q3, 2026-08, 2026, or 2026-07-01..2026-10-01. */
  label: string;
  /** ISO 8601 UTC, inclusive. */
  start: string;
  /** ISO 8601 UTC, exclusive. */
  end: string;
}

export class PeriodError extends Error {
  override name = 'PeriodError';
}

const iso = (d: Date) => d.toISOString();
const utc = (y: number, m: number, d = 1) => new Date(Date.UTC(y, m, d));

export function parsePeriod(text: string): Period {
  const s = text.trim();
  let m = /^(\d{4})-Q([1-4])$/i.exec(s);
  if (m) {
    const y = Number(m[1]);
    const q = Number(m[2]);
    return { label: `${y}-Q${q}`, start: iso(utc(y, (q - 1) * 3)), end: iso(utc(y, q * 3)) };
  }
  m = /^(\d{4})-(\d{2})$/.exec(s);
  if (m) {
    const y = Number(m[1]);
    const mo = Number(m[2]);
    if (mo < 1 || mo > 12) throw new PeriodError(`period ${JSON.stringify(text)}: month must be 01..12`);
    return { label: s, start: iso(utc(y, mo - 1)), end: iso(utc(y, mo)) };
  }
  m = /^(\d{4})$/.exec(s);
  if (m) {
    const y = Number(m[1]);
    return { label: s, start: iso(utc(y, 0)), end: iso(utc(y + 1, 0)) };
  }
  m = /^(\d{4}-\d{2}-\d{2})\.\.(\d{4}-\d{2}-\d{2})$/.exec(s);
  if (m) {
    const a = new Date(`${m[1]}T00:00:00Z`);
    const b = new Date(`${m[2]}T00:00:00Z`);
    if (Number.isNaN(a.getTime()) || Number.isNaN(b.getTime()) || a >= b) {
      throw new PeriodError(
        `period ${JSON.stringify(text)}: expected two valid dates, the first before the second`,
      );
    }
    return rangePeriod(a, b);
  }
  throw new PeriodError(
    `period ${JSON.stringify(text)}: expected YYYY-Qn (2026-Q3), YYYY-MM (2026-08), YYYY or YYYY-MM-DD..YYYY-MM-DD`,
  );
}

/** The period of the same kind just before `p` (quarter before a quarter, month before a month…). */
export function previousPeriod(p: Period): Period {
  let m = /^(\d{4})-Q([1-4])$/.exec(p.label);
  if (m) {
    const y = Number(m[1]);
    const q = Number(m[2]);
    return parsePeriod(q === 1 ? `${y - 1}-Q4` : `${y}-Q${q - 1}`);
  }
  m = /^(\d{4})-(\d{2})$/.exec(p.label);
  if (m) {
    const d = utc(Number(m[1]), Number(m[2]) - 2);
    return parsePeriod(iso(d).slice(0, 7));
  }
  if (/^\d{4}$/.test(p.label)) return parsePeriod(String(Number(p.label) - 1));
  // An explicit range: the range of the same length just before it, times kept (rounding a range
  // that is part of a day to dates gave an empty or wrong previous period).
  const len = Date.parse(p.end) - Date.parse(p.start);
  return rangePeriod(new Date(Date.parse(p.start) - len), p.start);
}

/**
 * The explicit range [start, end): labelled by its dates when both ends are midnight UTC
 * (2026-07-01..2026-10-01), else by its ISO times (an evidence bundle for part of a day).
 */
export function rangePeriod(start: Date | string, end: Date | string): Period {
  const s = iso(new Date(start));
  const e = iso(new Date(end));
  const midnight = (t: string) => t.endsWith('T00:00:00.000Z');
  return { label: midnight(s) && midnight(e) ? `${s.slice(0, 10)}..${e.slice(0, 10)}` : `${s}..${e}`, start: s, end: e };
}

/** The period of kind `kind` that ended most recently at or before `at`. */
export function lastCompletePeriod(kind: 'quarter' | 'month', at: Date): Period {
  const y = at.getUTCFullYear();
  const mo = at.getUTCMonth();
  if (kind === 'quarter') {
    const q = Math.floor(mo / 3); // 0-based current quarter
    return q === 0 ? parsePeriod(`${y - 1}-Q4`) : parsePeriod(`${y}-Q${q}`);
  }
  return parsePeriod(iso(utc(y, mo - 1)).slice(0, 7));
}

export function daysBetween(fromIso: string, toIso: string): number {
  return Math.floor((Date.parse(toIso) - Date.parse(fromIso)) / 86_400_000);
}
