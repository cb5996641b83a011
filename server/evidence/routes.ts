// Evidence bundles over HTTP, for people with a reader role: the list (recorded as an audit
// read like every audit-data route) and the archive itself. A download is recorded in the log
// with the bundle id and archive hash before anything is handed out: a pre-signed S3 URL (302),
// or the bytes streamed from the local store.
import type Hapi from '@hapi/hapi';
import Boom from '@hapi/boom';
import { STRATEGY, type Credentials } from '../auth/hapi-auth.ts';
import { AUDIT_READ_ROLES } from '../auth/roles.ts';
import { EvidenceNotFoundError, type BundleRow, type EvidenceService } from './bundle-service.ts';

export interface EvidenceRoutesOptions {
  service: EvidenceService;
  /** Route auth (default: the service's strategy, roles admin, compliance or auditor). */
  auth?: Hapi.RouteOptions['auth'];
}

const READERS = { strategy: STRATEGY, access: { scope: [...AUDIT_READ_ROLES] } };

function view(r: BundleRow) {
  return {
    bundle_id: r.bundleId,
    period: { from: r.periodFrom, to: r.periodTo },
    first_index: r.firstIndex,
    end_index: r.endIndex,
    record_count: r.endIndex - r.firstIndex,
    archive_sha256: r.archiveSha256,
    archive_size: r.archiveSize,
    manifest_sha256: r.manifestSha256,
    previous_sha256: r.previousSha256,
    signer_key_id: r.signerKeyId,
    store: { kind: r.storeKind, location: r.location, verified_by: r.verifiedBy, version_id: r.versionId },
    retention: r.retentionMode ? { mode: r.retentionMode, retain_until: r.retainUntil } : null,
    job_run: r.jobRun,
    log_index: r.logIdx,
    created_at: r.createdAt,
  };
}

export const evidenceRoutesPlugin: Hapi.Plugin<EvidenceRoutesOptions> = {
  name: 'auditgate-evidence',
  register(server, opts) {
    const auth = opts.auth ?? READERS;
    server.route({
      method: 'GET',
      path: '/api/evidence/bundles',
      options: { auth, plugins: { auditgate: { event: 'audit.read', what: 'evidence.bundles' } } },
      handler: async () => (await opts.service.list()).map(view),
    });
    server.route({
      method: 'GET',
      path: '/api/evidence/bundles/{id}/archive',
      options: { auth },
      handler: async (request, h) => {
        const c = request.auth.credentials as unknown as Credentials;
        let got;
        try {
          got = await opts.service.download(String(request.params.id), c.actor, {
            address: request.info.remoteAddress,
            user_agent: typeof request.headers['user-agent'] === 'string' ? request.headers['user-agent'] : undefined,
          });
        } catch (err) {
          if (err instanceof EvidenceNotFoundError) throw Boom.notFound(err.message);
          throw Boom.serverUnavailable(`audit store unavailable: the download was not recorded, so it is not served (${(err as Error).message})`);
        }
        if (got.url) {
          return h.redirect(got.url).code(302).header('x-archive-sha256', got.row.archiveSha256).header('cache-control', 'no-store');
        }
        return h
          .response(got.stream)
          .type('application/gzip')
          .bytes(got.row.archiveSize)
          .header('content-disposition', `attachment; filename="${got.filename}"`)
          .header('x-archive-sha256', got.row.archiveSha256)
          .header('cache-control', 'no-store');
      },
    });
  },
};
