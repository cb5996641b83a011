// Prometheus metrics on GET /metrics (prom-client, a registry of the service's own): what an
// operator alerts on. Is the audit log writable and keeping up? How much MCP traffic passes, how
// much is refused and why, how fast upstreams answer?
//
// Traffic is counted from the audit records the gateway appends, once each is durable. That is the
// one place every message passes through, so no message can be forwarded without being counted,
// and the counts are what the log holds. The log's state is
// read when the registry is scraped, so the commit path pays for nothing but one histogram
// observation per batch.
//
// Label values that a client controls are limited to fixed sets. Unknown targets count as
// "(unknown)" and methods outside the MCP specification as "(other)". Anything else would let a
// client create time series without limit.
import type Hapi from '@hapi/hapi';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AuditRecord } from '../gateway/audit-record.ts';
import type { BatchStats, LogSnapshot } from './audit/knex-log.ts';
import { STRATEGY } from './auth/hapi-auth.ts';
import { METRICS_ROLES } from './auth/roles.ts';
import { VERSION } from './version.ts';

/** JSON-RPC methods of the MCP specification (both eras); any other method counts as "(other)". */
const MCP_METHODS = new Set([
  'initialize',
  'notifications/initialized',
  'ping',
  'tools/list',
  'tools/call',
  'resources/list',
  'resources/templates/list',
  'resources/read',
  'resources/subscribe',
  'resources/unsubscribe',
  'prompts/list',
  'prompts/get',
  'completion/complete',
  'logging/setLevel',
  'sampling/createMessage',
  'elicitation/create',
  'roots/list',
  'tasks/get',
  'tasks/list',
  'tasks/result',
  'tasks/cancel',
  'notifications/cancelled',
  'notifications/progress',
  'notifications/message',
  'notifications/resources/updated',
  'notifications/resources/list_changed',
  'notifications/tools/list_changed',
  'notifications/prompts/list_changed',
  'notifications/roots/list_changed',
  'notifications/elicitation/complete',
  'notifications/tasks/status',
]);

/** Refusal checks are short names (auth, session, size…) or policy rule names an admin chose. */
const RULE_LABEL = /^[\w .:()/-]{1,64}$/;

/** What the metrics read from the log at scrape time. */
export interface MetricsLog {
  readonly stats: BatchStats;
  snapshot(): LogSnapshot;
}

export interface ServiceMetricsOptions {
  /** Whether a target name is configured (others are labelled "(unknown)"). */
  knownTarget: (name: string) => boolean;
  instance: string;
  /** Process metrics (CPU, memory, event-loop delay, GC); default true. */
  processMetrics?: boolean;
}

export class ServiceMetrics {
  readonly registry = new Registry();
  readonly #knownTarget: (name: string) => boolean;
  readonly #messages: Counter<'target' | 'direction' | 'kind' | 'method'>;
  readonly #refusals: Counter<'target' | 'status' | 'rule'>;
  readonly #latency: Histogram<'target' | 'direction'>;
  readonly #sessions: Counter<'target' | 'event'>;
  readonly #processes: Counter<'target' | 'event'>;
  readonly #commitSeconds: Histogram;

  constructor(opts: ServiceMetricsOptions) {
    const registers = [this.registry];
    this.#knownTarget = opts.knownTarget;
    if (opts.processMetrics !== false) collectDefaultMetrics({ register: this.registry });

    new Gauge({
      name: 'auditgate_build_info',
      help: 'Always 1; the labels say which auditgate this is.',
      labelNames: ['version', 'instance'],
      registers,
    }).set({ version: VERSION, instance: opts.instance }, 1);

    this.#messages = new Counter({
      name: 'auditgate_mcp_messages_total',
      help: 'JSON-RPC messages recorded by the gateway (each batch element counts), by direction and kind.',
      labelNames: ['target', 'direction', 'kind', 'method'],
      registers,
    });
    this.#refusals = new Counter({
      name: 'auditgate_mcp_refusals_total',
      help: 'Requests refused before forwarding (authentication, policy, session, malformed…), by HTTP status and the check that refused.',
      labelNames: ['target', 'status', 'rule'],
      registers,
    });
    this.#latency = new Histogram({
      name: 'auditgate_mcp_response_latency_seconds',
      help: 'Time from a forwarded request to its response, as the gateway saw it: upstream_to_client for upstream answers, client_to_upstream for clients answering server-initiated requests.',
      labelNames: ['target', 'direction'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.#sessions = new Counter({
      name: 'auditgate_mcp_session_events_total',
      help: 'MCP sessions opened and closed (open minus close is the number open).',
      labelNames: ['target', 'event'],
      registers,
    });
    this.#processes = new Counter({
      name: 'auditgate_stdio_process_events_total',
      help: 'stdio upstream processes spawned and exited.',
      labelNames: ['target', 'event'],
      registers,
    });
    this.#commitSeconds = new Histogram({
      name: 'auditgate_log_commit_seconds',
      help: 'Duration of each durable group commit of the audit log (write-ahead: requests and answers wait for it).',
      buckets: [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });
  }

  /** Adds the log's metrics, read from it at each scrape. */
  watchLog(log: MetricsLog): void {
    const registers = [this.registry];
    const counter = (name: string, help: string, read: () => number) =>
      new Counter({
        name,
        help,
        registers,
        collect() {
          this.reset();
          this.inc(read());
        },
      });
    const gauge = (name: string, help: string, read: () => number | undefined) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          const v = read();
          if (v === undefined) this.reset();
          else this.set(v);
        },
      });
    counter('auditgate_log_entries_total', 'Audit log entries this process committed durably.', () => log.stats.entries);
    counter('auditgate_log_commits_total', 'Group commits (database transactions) this process made.', () => log.stats.batches);
    counter(
      'auditgate_log_append_failures_total',
      'Appends answered "audit store unavailable" (the gateway then refuses the traffic with 503: fail closed).',
      () => log.stats.failed,
    );
    counter(
      'auditgate_log_cas_conflicts_total',
      'Commits retried because another writer moved the log first.',
      () => log.stats.casConflicts,
    );
    gauge('auditgate_log_tree_size', 'Merkle tree size as of this process’s last commit.', () => log.snapshot().size);
    gauge(
      'auditgate_log_pending_entries',
      'Appends queued or being committed, not yet durable.',
      () => {
        const s = log.snapshot();
        return s.queued + s.committing;
      },
    );
    gauge(
      'auditgate_log_index_backlog',
      'Committed entries whose audit_events query rows are not written yet (reports wait for them).',
      () => log.snapshot().indexBacklog,
    );
    gauge(
      'auditgate_log_writable',
      '1 while the log takes appends; 0 after its self-check failed or it detected an inconsistency (alert on this).',
      () => (log.snapshot().writable ? 1 : 0),
    );
    gauge('auditgate_log_checkpoint_size', 'Tree size of the newest checkpoint this process signed.', () => log.snapshot().checkpoint?.size);
    gauge(
      'auditgate_log_checkpoint_timestamp_seconds',
      'When that checkpoint was signed (Unix time).',
      () => {
        const c = log.snapshot().checkpoint;
        return c ? Date.parse(c.signedAt) / 1000 : undefined;
      },
    );
    new Counter({
      name: 'auditgate_log_sqlite_commits_total',
      help: 'SQLite commit attempts made on the event loop (while they are quick) and on the log’s writer thread; one that lost the compare-and-swap to another writer counts too.',
      labelNames: ['where'],
      registers,
      collect() {
        const w = log.snapshot().writer;
        this.reset();
        if (!w) return;
        this.inc({ where: 'event_loop' }, w.inline);
        this.inc({ where: 'thread' }, w.thread);
      },
    });
  }

  /** For KnexLogOptions.onCommit. */
  readonly committed = (_entries: number, ms: number): void => {
    this.#commitSeconds.observe(ms / 1000);
  };

  #target(name: string | undefined): string {
    return name !== undefined && this.#knownTarget(name) ? name : '(unknown)';
  }

  /** Counts one record the gateway appended, once it is durable. */
  observe(r: AuditRecord): void {
    const mcp = r.mcp;
    if (!mcp) return;
    switch (r.event) {
      case 'mcp.message': {
        const target = this.#target(mcp.target);
        const direction = mcp.direction ?? '(none)';
        this.#messages.inc({
          target,
          direction,
          kind: mcp.kind ?? 'not_jsonrpc',
          method: mcp.method === undefined ? '' : MCP_METHODS.has(mcp.method) ? mcp.method : '(other)',
        });
        if (mcp.latency_ms !== undefined) this.#latency.observe({ target, direction }, mcp.latency_ms / 1000);
        return;
      }
      case 'mcp.refused': {
        const rule = r.outcome?.rule;
        this.#refusals.inc({
          target: this.#target(mcp.target),
          status: String(mcp.http_status ?? ''),
          rule: rule !== undefined && RULE_LABEL.test(rule) ? rule : '(other)',
        });
        return;
      }
      case 'mcp.session.open':
      case 'mcp.session.close':
        this.#sessions.inc({ target: this.#target(mcp.target), event: r.event === 'mcp.session.open' ? 'open' : 'close' });
        return;
      case 'mcp.process.spawn':
      case 'mcp.process.exit':
        this.#processes.inc({ target: this.#target(mcp.target), event: r.event === 'mcp.process.spawn' ? 'spawn' : 'exit' });
        return;
      default:
    }
  }
}

/**
 * GET /metrics in Prometheus text format. It needs a credential like every other route: an API key
 * with the `monitor` role (it reads nothing else) or `admin`. Prometheus sends it as
 * `authorization: { credentials_file: … }`. Metrics are not audit data: scrapes, and refused
 * scrapes, are not recorded in the audit log.
 */
export const metricsPlugin: Hapi.Plugin<{ metrics: ServiceMetrics }> = {
  name: 'auditgate-metrics',
  register(server, opts) {
    server.route({
      method: 'GET',
      path: '/metrics',
      options: { auth: { strategy: STRATEGY, access: { scope: [...METRICS_ROLES] } } },
      handler: async (_request, h) =>
        h.response(await opts.metrics.registry.metrics()).type(opts.metrics.registry.contentType),
    });
  },
};
