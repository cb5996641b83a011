// CSV exports (RFC 4180) that are safe to open in a spreadsheet: a cell that a spreadsheet
// would read as a formula (CWE-1236) is prefixed with a single quote, so it shows as text.

const FORMULA_START = /^[=+\-@\t\r]/;

export function neutraliseCell(value: unknown): string {
  if (value === null || value === undefined) return '';
  let s = Array.isArray(value)
    ? value.join('; ')
    : typeof value === 'object'
      ? JSON.stringify(value)
      : String(value);
  if (FORMULA_START.test(s)) s = `'${s}`;
  return s;
}

function quote(s: string): string {
  return /[",\r\n]/.test(s) || s !== s.trim() ? `"${s.replace(/"/g, '""')}"` : s;
}

export interface CsvColumn<T> {
  header: string;
  value: (row: T) => unknown;
}

/** CRLF line ends (RFC 4180), header row first, every cell neutralised and quoted as needed. */
export function toCsv<T>(columns: CsvColumn<T>[], rows: Iterable<T>): string {
  const lines = [columns.map((c) => quote(neutraliseCell(c.header))).join(',')];
  for (const r of rows) lines.push(columns.map((c) => quote(neutraliseCell(c.value(r)))).join(','));
  return `${lines.join('\r\n')}\r\n`;
}
