// The reports API for the UI: campaigns (launch, lines, decide, reassign, remediate, sign off,
// complete), report downloads (PDF / canonical JSON / CSV — each recorded as 'audit.read' before
// a byte is served, by the identity plugin) and the scheduler's runs.
import type Hapi from '@hapi/hapi';
import Boom from '@hapi/boom';
import { STRATEGY, type Credentials } from '../auth/hapi-auth.ts';
import { ApiKeyNotFoundError, type ApiKeyStore } from '../auth/api-keys.ts';
import { configChangeRecord, keyChange } from '../auth/config-change.ts';
import { ReviewRuleError } from '../../reports/campaign.ts';
import { parsePeriod, PeriodError } from '../../reports/period.ts';
import { CampaignNotFoundError, CampaignStateError, type CampaignStore } from './campaigns.ts';
import { generateReport, REPORT_KINDS, type GenerateContext, type ReportKind } from './generate.ts';
import type { Scheduler } from '../jobs/scheduler.ts';
import type { RecordSink } from './audit-entries.ts';

export interface ReportsApiOptions {
  campaigns: CampaignStore;
  generate: GenerateContext;
  scheduler?: Scheduler;
  apiKeys?: ApiKeyStore;
  sink: RecordSink;
  instance: string;
}

const READERS = { strategy: STRATEGY, access: { scope: ['admin', 'compliance', 'auditor'] } };
const REVIEWERS = { strategy: STRATEGY, access: { scope: ['admin', 'compliance', 'approver'] } };
const MANAGERS = { strategy: STRATEGY, access: { scope: ['admin', 'compliance'] } };
const ADMIN = { strategy: STRATEGY, access: { scope: ['admin'] } };
const JSON_BODY = { allow: ['application/json'], maxBytes: 64 * 1024 };

function toBoom(err: unknown): never {
  if (err instanceof CampaignNotFoundError) throw Boom.notFound(err.message);
  if (err instanceof CampaignStateError) throw Boom.conflict(err.message);
  if (err instanceof PeriodError) throw Boom.badRequest(err.message);
  if (err instanceof ReviewRuleError) {
    if (err.code === 'self_review' || err.code === 'not_assigned') throw Boom.forbidden(err.message);
    if (err.code === 'unknown_item') throw Boom.notFound(err.message);
    if (err.code === 'conflict' || err.code === 'already_signed' || err.code === 'not_complete')
      throw Boom.conflict(err.message);
    throw Boom.badData(err.message);
  }
  throw err;
}

const str = (v: unknown, name: string, required = true): string | undefined => {
  if (v === undefined || v === null || v === '') {
    if (required) throw Boom.badRequest(`${name} is required`);
    return undefined;
  }
  if (typeof v !== 'string') throw Boom.badRequest(`${name} must be a string`);
  return v;
};

export const reportsApiPlugin: Hapi.Plugin<ReportsApiOptions> = {
  name: 'auditgate-reports-api',
  register(server, opts) {
    const store = opts.campaigns;
    const actorOf = (r: Hapi.Request) => (r.auth.credentials as unknown as Credentials).actor;
    type Handler = (request: Hapi.Request, h: Hapi.ResponseToolkit) => Promise<unknown>;
    const route = (
      method: 'GET' | 'POST',
      path: string,
      auth: object,
      handler: Handler,
      extra: Hapi.RouteOptions = {},
    ) =>
      server.route({
        method,
        path,
        options: { auth, ...extra },
        handler: async (request, h) => {
          try {
            return (await handler(request, h)) as Hapi.Lifecycle.ReturnValue;
          } catch (e) {
            return toBoom(e);
          }
        },
      });
    const param = (r: Hapi.Request, name: string) => String(r.params[name]);

    route('GET', '/api/reports/campaigns', READERS, async () => store.list());

    route(
      'POST',
      '/api/reports/campaigns',
      MANAGERS,
      async (request, h) => {
        const body = (request.payload ?? {}) as Record<string, unknown>;
        const period = parsePeriod(str(body.period, 'period')!);
        const asOf = str(body.asOf, 'asOf', false);
        if (asOf && Number.isNaN(Date.parse(asOf))) throw Boom.badRequest('asOf must be an ISO 8601 time');
        const c = await store.launch({
          period,
          asOf: asOf ? new Date(asOf).toISOString() : undefined,
          actor: actorOf(request),
        });
        return h.response(c).code(201);
      },
      { payload: JSON_BODY },
    );

    route('GET', '/api/reports/campaigns/{id}', READERS, async (request) => {
      const c = await store.get(param(request, 'id'));
      if (!c) throw new CampaignNotFoundError(param(request, 'id'));
      const data = await store.reportData(c.id);
      return { ...c, summary: data.summary, reviewers: data.reviewers, signoffs: data.signoffs };
    });

    route(
      'GET',
      '/api/reports/campaigns/{id}/lines',
      { strategy: STRATEGY, access: { scope: ['admin', 'compliance', 'auditor', 'approver'] } },
      async (request) => {
        const q = request.query as Record<string, string | undefined>;
        if (!(await store.get(param(request, 'id')))) throw new CampaignNotFoundError(param(request, 'id'));
        return store.lines(param(request, 'id'), {
          reviewer: q.reviewer,
          offset: q.offset ? Number(q.offset) : 0,
          limit: q.limit ? Number(q.limit) : 100,
        });
      },
    );

    route(
      'POST',
      '/api/reports/campaigns/{id}/decisions',
      REVIEWERS,
      async (request, h) => {
        const b = (request.payload ?? {}) as Record<string, unknown>;
        const decision = str(b.decision, 'decision') as 'keep' | 'revoke' | 'modify';
        const d = await store.decide(
          param(request, 'id'),
          {
            itemId: str(b.itemId, 'itemId')!,
            decision,
            rationale: str(b.rationale, 'rationale', false) ?? '',
            modifyTo: str(b.modifyTo, 'modifyTo', false),
          },
          actorOf(request),
        );
        return h.response(d).code(201);
      },
      { payload: JSON_BODY },
    );

    route(
      'POST',
      '/api/reports/campaigns/{id}/reassign',
      MANAGERS,
      async (request, h) => {
        const b = (request.payload ?? {}) as Record<string, unknown>;
        const r = await store.reassign(
          param(request, 'id'),
          { itemId: str(b.itemId, 'itemId')!, to: str(b.to, 'to')!, reason: str(b.reason, 'reason')! },
          actorOf(request),
        );
        return h.response(r).code(201);
      },
      { payload: JSON_BODY },
    );

    // Carries out a revoke decision on an API key (the service can do that itself), or records
    // the reference of a change made elsewhere (policy edit, IdP group removal).
    route(
      'POST',
      '/api/reports/campaigns/{id}/remediate',
      ADMIN,
      async (request) => {
        const b = (request.payload ?? {}) as Record<string, unknown>;
        const itemId = str(b.itemId, 'itemId')!;
        const actor = actorOf(request);
        const lines = await store.lines(param(request, 'id'), { limit: 1000 });
        let line = lines.lines.find((l) => l.itemId === itemId);
        for (let off = 1000; !line && off < lines.total; off += 1000) {
          line = (await store.lines(param(request, 'id'), { offset: off, limit: 1000 })).lines.find(
            (l) => l.itemId === itemId,
          );
        }
        if (!line) throw new ReviewRuleError(`no line ${itemId} in this campaign's snapshot`, 'unknown_item');
        let reference = str(b.reference, 'reference', false);
        if (!reference) {
          if (line.decision?.decision !== 'revoke' || line.authMethod !== 'api_key' || !opts.apiKeys) {
            throw Boom.badRequest(
              'only revocations of API keys are carried out by the service; give the reference of the change made elsewhere',
            );
          }
          try {
            const r = await opts.apiKeys.revoke(line.accountId, actor.subject);
            const idx = r.changed
              ? await opts.sink.append(
                  configChangeRecord(actor, keyChange('revoke', r.before, r.after), opts.instance),
                )
              : undefined;
            reference =
              idx === undefined
                ? `API key ${line.accountId} revoked at ${r.after.revokedAt} by ${r.after.revokedBy}`
                : `audit log leaf ${idx}: API key ${line.accountId} revoked`;
          } catch (err) {
            if (err instanceof ApiKeyNotFoundError) throw Boom.notFound(err.message);
            throw err;
          }
        }
        await store.recordRemediation(param(request, 'id'), itemId, reference, actor);
        return { itemId, reference };
      },
      { payload: JSON_BODY },
    );

    route(
      'POST',
      '/api/reports/campaigns/{id}/signoff',
      REVIEWERS,
      async (request, h) => {
        const b = (request.payload ?? {}) as Record<string, unknown>;
        const role = str(b.role, 'role');
        if (role !== 'reviewer' && role !== 'control_owner')
          throw Boom.badRequest('role must be reviewer or control_owner');
        return h.response(await store.signoff(param(request, 'id'), role, actorOf(request))).code(201);
      },
      { payload: JSON_BODY },
    );

    route('POST', '/api/reports/campaigns/{id}/complete', MANAGERS, async (request) =>
      store.complete(param(request, 'id'), actorOf(request)),
    );

    const send = (
      h: Hapi.ResponseToolkit,
      out: Awaited<ReturnType<typeof generateReport>>,
      format: string,
      name: string,
    ) => {
      const disposition = (ext: string) => `attachment; filename="${name}.${ext}"`;
      const headers = { 'x-report-data-sha256': out.dataHash, 'cache-control': 'no-store' };
      let res;
      if (format === 'pdf')
        res = h.response(out.pdf!).type('application/pdf').header('content-disposition', disposition('pdf'));
      else if (format === 'json')
        res = h
          .response(out.json)
          .type('application/json')
          .header('content-disposition', disposition('json'));
      else {
        const csv = out.csv[`${format}.csv`];
        if (!csv) throw Boom.notFound(`no CSV ${format} (have: ${Object.keys(out.csv).join(', ')})`);
        res = h
          .response(csv)
          .type('text/csv; charset=utf-8')
          .header('content-disposition', disposition(`${format}.csv`));
      }
      for (const [k, v] of Object.entries(headers)) res.header(k, v);
      return res;
    };

    route(
      'GET',
      '/api/reports/campaigns/{id}/report.{format}',
      READERS,
      async (request, h) => {
        const c = await store.get(param(request, 'id'));
        if (!c) throw new CampaignNotFoundError(param(request, 'id'));
        const format = param(request, 'format') as string;
        const out = await generateReport(
          opts.generate,
          'access-review',
          c.period,
          { generatedAt: new Date().toISOString(), trigger: 'api' },
          { campaignId: c.id, pdf: format === 'pdf', csv: format !== 'pdf' && format !== 'json' },
        );
        return send(h, out, format, `access-review-${c.period.label}`);
      },
      { plugins: { auditgate: { event: 'audit.read', what: 'access-review report' } } },
    );

    route(
      'GET',
      '/api/reports/{kind}/{period}.{format}',
      READERS,
      async (request, h) => {
        const kind = param(request, 'kind') as ReportKind;
        if (!REPORT_KINDS.includes(kind)) throw Boom.notFound(`no report kind ${kind}`);
        const period = parsePeriod(param(request, 'period'));
        const format = param(request, 'format') as string;
        const out = await generateReport(
          opts.generate,
          kind,
          period,
          { generatedAt: new Date().toISOString(), trigger: 'api' },
          { pdf: format === 'pdf', csv: format !== 'pdf' && format !== 'json' },
        );
        return send(h, out, format, `${kind}-${period.label}`);
      },
      { plugins: { auditgate: { event: 'audit.read', what: 'report' } } },
    );

    route('GET', '/api/reports/runs', READERS, async () => {
      if (!opts.scheduler) return { jobs: {}, runs: [] };
      return {
        jobs: (await opts.scheduler.health()).detail,
        runs: await opts.scheduler.store.runs(undefined, 200),
      };
    });
  },
};
