// Writing to the client: plain JSON answers and SSE streams on a Node response. Streams are written
// event by event with backpressure, never buffered whole, and are never compressed.
import type { ServerResponse } from 'node:http';
import { errorMessage, type JsonRpcId } from './jsonrpc.ts';
import { formatSseEvent, type SseEvent } from './sse.ts';

export const STREAM_HEADERS: Record<string, string> = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache',
  'x-accel-buffering': 'no',
};

/** How long an SSE response may wait for its first event before its headers are sent alone. */
const HEADER_FLUSH_MS = 20;

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body), 'utf8');
  res.writeHead(status, {
    'content-type': 'application/json',
    'cache-control': 'no-cache',
    'content-length': String(bytes.length),
    ...headers,
  });
  res.end(bytes);
}

export function sendRpcError(
  res: ServerResponse,
  status: number,
  id: JsonRpcId | undefined,
  code: number,
  message: string,
  data?: unknown,
  headers: Record<string, string> = {},
): void {
  sendJson(res, status, errorMessage(id, code, message, data), headers);
}

export function sendEmpty(res: ServerResponse, status: number, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, headers);
  res.end();
}

/** An SSE response to one client connection. */
export class SseWriter {
  private closedFlag = false;
  private readonly closeHandlers: Array<() => void> = [];

  constructor(
    readonly res: ServerResponse,
    status = 200,
    headers: Record<string, string> = {},
  ) {
    res.writeHead(status, { ...STREAM_HEADERS, ...headers });
    // Headers go out with the first event (one write instead of two); if no event comes soon,
    // they go on their own so the client learns the stream is open (and its session id).
    // (res.headersSent turns true at writeHead, before anything reaches the socket: the timer
    // is cleared by the first write instead.)
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      if (!this.closed) res.flushHeaders();
    }, HEADER_FLUSH_MS);
    res.once('close', () => {
      this.closedFlag = true;
      this.clearFlush();
      for (const h of this.closeHandlers.splice(0)) h();
    });
  }

  private flushTimer: NodeJS.Timeout | undefined;

  private clearFlush(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
  }

  get closed(): boolean {
    return this.closedFlag || this.res.destroyed || this.res.writableEnded;
  }

  onClose(fn: () => void): void {
    if (this.closed) fn();
    else this.closeHandlers.push(fn);
  }

  /**
   * Writes one event; resolves false when the client is gone. Waits for drain under backpressure.
   * `last`: the stream is expected to end right after this event (it answers the last open
   * request). The event is then held until the end of this turn of the event loop, so that an
   * end() within the turn goes out in the same write as the event: one system call and one
   * segment to the client instead of two. If the stream goes on, the event leaves at the turn's
   * end anyway.
   */
  async write(ev: SseEvent | string, last = false): Promise<boolean> {
    if (this.closed) return false;
    const text = typeof ev === 'string' ? ev : formatSseEvent(ev);
    this.clearFlush();
    if (last) {
      this.res.cork();
      setImmediate(() => {
        if (!this.res.writableEnded) this.res.uncork();
      });
    }
    if (this.res.write(text)) return true;
    return new Promise<boolean>((resolve) => {
      const done = (ok: boolean) => {
        this.res.off('drain', onDrain);
        this.res.off('close', onClose);
        resolve(ok);
      };
      const onDrain = () => done(true);
      const onClose = () => done(false);
      this.res.on('drain', onDrain);
      this.res.on('close', onClose);
    });
  }

  /** Writes without waiting for drain (the socket buffers); for fan-out from a shared pump. */
  writeNow(ev: SseEvent | string): boolean {
    if (this.closed) return false;
    this.clearFlush();
    this.res.write(typeof ev === 'string' ? ev : formatSseEvent(ev));
    return true;
  }

  end(): void {
    this.clearFlush();
    if (!this.closed) this.res.end();
  }

  /** Abrupt end: the client sees a broken stream (and may resume), not a clean finish. */
  abort(): void {
    if (!this.res.destroyed) this.res.destroy();
  }
}
