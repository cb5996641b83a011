// Wraps the SDK's Streamable HTTP client transport and keeps every JSON-RPC message the client
// sent and received, so tests can check each one against its audit record.
import { StreamableHTTPClientTransport, type StreamableHTTPClientTransportOptions } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport, TransportSendOptions } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';

export interface Seen {
  dir: 'out' | 'in';
  message: Record<string, unknown>;
}

export class CapturingTransport implements Transport {
  readonly inner: StreamableHTTPClientTransport;
  readonly seen: Seen[] = [];
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;

  constructor(url: URL, opts: StreamableHTTPClientTransportOptions) {
    this.inner = new StreamableHTTPClientTransport(url, opts);
    this.inner.onmessage = (m) => {
      this.seen.push({ dir: 'in', message: JSON.parse(JSON.stringify(m)) });
      this.onmessage?.(m);
    };
    this.inner.onclose = () => this.onclose?.();
    this.inner.onerror = (e) => this.onerror?.(e);
  }

  get sessionId(): string | undefined {
    return this.inner.sessionId;
  }

  setProtocolVersion(v: string): void {
    this.inner.setProtocolVersion(v);
  }

  start(): Promise<void> {
    return this.inner.start();
  }

  async send(message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> {
    this.seen.push({ dir: 'out', message: JSON.parse(JSON.stringify(message)) });
    await this.inner.send(message, options);
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  terminateSession(): Promise<void> {
    return this.inner.terminateSession();
  }
}
