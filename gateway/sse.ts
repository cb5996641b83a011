// Server-Sent Events, event by event: an incremental parser for upstream streams (it never holds
// more than the event being read) and a writer for what the gateway sends. Events without data
// (priming events: an id and maybe retry) and comments are kept, so a relayed stream keeps its
// resumption points and keep-alives.

export interface SseEvent {
  id?: string;
  event?: string;
  /** Lines of the data field joined with "\n"; undefined when the event had no data field. */
  data?: string;
  retry?: number;
  /** A comment line (": …"), relayed as a keep-alive. */
  comment?: string;
}

export class SseParser {
  private readonly decoder = new TextDecoder('utf-8');
  private buf = '';
  private cur: SseEvent = {};
  private dataLines: string[] | undefined;
  private fields = 0;
  private first = true;
  /** Guard against an upstream that never ends an event. */
  constructor(private readonly maxEventBytes = 64 * 1024 * 1024) {}

  /** Feeds bytes; returns the events completed by them, in order. */
  push(chunk: Uint8Array | string): SseEvent[] {
    let text = typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    if (this.first && text.length) {
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      this.first = false;
    }
    this.buf += text;
    this.nextCr = -2;
    const out: SseEvent[] = [];
    let start = 0;
    for (;;) {
      const nl = this.findEol(start);
      if (nl < 0) break;
      const line = this.buf.slice(start, nl);
      // \r\n counts as one line ending; a lone \r at the very end may be followed by \n later.
      let next = nl + 1;
      if (this.buf[nl] === '\r') {
        if (nl + 1 >= this.buf.length) break;
        if (this.buf[nl + 1] === '\n') next = nl + 2;
      }
      start = next;
      const ev = this.line(line);
      if (ev) out.push(ev);
    }
    this.buf = this.buf.slice(start);
    this.nextCr = -2;
    if (this.buf.length > this.maxEventBytes) throw new Error('SSE line exceeds the size limit');
    return out;
  }

  /** End of input: an unterminated event is discarded, as the SSE spec says. */
  end(): SseEvent[] {
    const rest = this.decoder.decode();
    const out = rest ? this.push(rest) : [];
    // A final lone CR was held back in case LF followed; at the end it is a line ending.
    if (this.buf.endsWith('\r')) out.push(...this.push('\n'));
    return out;
  }

  /** Position of the next \r at or after a search start (-1: none left), so scans stay linear. */
  private nextCr = -2;

  private findEol(from: number): number {
    const n = this.buf.indexOf('\n', from);
    if (this.nextCr !== -1 && this.nextCr < from) this.nextCr = this.buf.indexOf('\r', from);
    const r = this.nextCr;
    if (n < 0) return r;
    if (r < 0) return n;
    return Math.min(n, r);
  }

  private line(line: string): SseEvent | undefined {
    if (line === '') {
      if (this.fields === 0) return undefined;
      const ev = this.cur;
      if (this.dataLines) ev.data = this.dataLines.join('\n');
      this.cur = {};
      this.dataLines = undefined;
      this.fields = 0;
      return ev;
    }
    if (line.startsWith(':')) {
      // Comments outside an event are relayed on their own; inside one they are dropped.
      if (this.fields === 0) return { comment: line.slice(1).replace(/^ /, '') };
      return undefined;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'data':
        (this.dataLines ??= []).push(value);
        break;
      case 'id':
        if (!value.includes('\0')) this.cur.id = value;
        break;
      case 'event':
        this.cur.event = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value)) this.cur.retry = Number(value);
        break;
      default:
        return undefined;
    }
    this.fields++;
    return undefined;
  }
}

/** Serialises one event; data containing newlines becomes several data lines. */
export function formatSseEvent(ev: SseEvent): string {
  if (ev.comment !== undefined && ev.id === undefined && ev.data === undefined && ev.event === undefined) {
    return `: ${ev.comment.replace(/[\r\n]+/g, ' ')}\n\n`;
  }
  let s = '';
  if (ev.event !== undefined) s += `event: ${ev.event}\n`;
  if (ev.id !== undefined) s += `id: ${ev.id}\n`;
  if (ev.retry !== undefined) s += `retry: ${ev.retry}\n`;
  if (ev.data !== undefined) {
    for (const line of ev.data.split(/\r\n|\r|\n/)) s += `data: ${line}\n`;
  }
  return `${s}\n`;
}
