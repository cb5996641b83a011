// What JSON.parse accepts but an audit record cannot faithfully hold. The record commits to the
// parsed message, so the message must mean one thing to every parser (I-JSON, RFC 7493):
//   - no duplicate member names: JSON.parse keeps the last, other parsers the first or refuse,
//     so {"name":"a","name":"b"} could be recorded (and allowed by policy) as one tool and run
//     upstream as another;
//   - every number a finite double: 1e400 parses to Infinity, which has no JSON text at all;
//   - nesting within MAX_JSON_DEPTH: records are canonicalised, and later checked, by recursive
//     code, and a few kilobytes of brackets would overflow its stack.
// One pass over text that JSON.parse has already accepted, so it need not validate anything.

export const MAX_JSON_DEPTH = 256;

export interface JsonTextProblem {
  rule: 'depth' | 'duplicate-key' | 'number';
  message: string;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const COMMA = 0x2c;
const MINUS = 0x2d;

/** Index of the quote that closes the string opening at `start`. */
function stringEnd(text: string, start: number): number {
  let i = text.indexOf('"', start + 1);
  for (;;) {
    // A quote preceded by an odd number of backslashes is escaped.
    let b = i - 1;
    while (text.charCodeAt(b) === BACKSLASH) b--;
    if ((i - 1 - b) % 2 === 0) return i;
    i = text.indexOf('"', i + 1);
  }
}

export interface JsonTextScan {
  problem?: JsonTextProblem;
  /**
   * The first integer a double cannot hold exactly (beyond 2^53, e.g. 12345678901234567890):
   * allowed — I-JSON only warns against it — but the parsed message, and so its canonical form,
   * holds a rounded value, so the record keeps the exact text as well.
   */
  inexactInteger?: string;
}

/** Problems and inexact integers in `text` (valid JSON). */
export function scanJsonText(text: string): JsonTextScan {
  let inexactInteger: string | undefined;
  const found = (problem: JsonTextProblem): JsonTextScan => (inexactInteger ? { problem, inexactInteger } : { problem });
  // One entry per open container: the member names seen so far for objects, null for arrays.
  const open: Array<Set<string> | null> = [];
  let expectKey = false;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const end = stringEnd(text, i);
      if (expectKey) {
        const raw = text.slice(i + 1, end);
        // Escapes spell the same name differently ("a" and "\u0061"): compare decoded names.
        const name = raw.includes('\\') ? (JSON.parse(text.slice(i, end + 1)) as string) : raw;
        const names = open[open.length - 1]!;
        if (names.has(name)) return found({ rule: 'duplicate-key', message: `duplicate member name ${JSON.stringify(name)}` });
        names.add(name);
        expectKey = false;
      }
      i = end;
    } else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      if (open.length >= MAX_JSON_DEPTH) return found({ rule: 'depth', message: `JSON nested deeper than ${MAX_JSON_DEPTH} levels` });
      const isObject = c === OPEN_OBJECT;
      open.push(isObject ? new Set() : null);
      expectKey = isObject;
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      open.pop();
      expectKey = false;
    } else if (c === COMMA) {
      expectKey = open[open.length - 1] != null;
    } else if (c === MINUS || (c >= 0x30 && c <= 0x39)) {
      let end = i + 1;
      let exponent = false;
      let fraction = false;
      for (; end < n; end++) {
        const d = text.charCodeAt(end);
        if (d === 0x65 || d === 0x45) exponent = true;
        else if (d === 0x2e) fraction = true;
        else if (!((d >= 0x30 && d <= 0x39) || d === 0x2b || d === MINUS)) break;
      }
      // Only an exponent or more than 308 digits can leave the range of a double.
      if ((exponent || end - i > 308) && !Number.isFinite(Number(text.slice(i, end)))) {
        return found({ rule: 'number', message: `number ${text.slice(i, Math.min(end, i + 40))} is out of range` });
      }
      // 2^53 has 16 digits: shorter integers are always exact.
      if (!exponent && !fraction && end - i > 15 && inexactInteger === undefined && !Number.isSafeInteger(Number(text.slice(i, end)))) {
        inexactInteger = text.slice(i, end);
      }
      i = end - 1;
    }
  }
  return inexactInteger ? { inexactInteger } : {};
}
