// `auditgate bundle`: produce one period's evidence bundle on demand, exactly as the scheduled
// job does (same range rules, same store, same log entry), optionally also writing the archive
// to --out. Running it again for the same period gives the same bytes and records nothing new.
import { resolve } from 'node:path';
import { loadConfig } from '../config.ts';
import { configuredReportScope } from '../reports/scope.ts';
import { migrate } from '../db.ts';
import { openDatabase } from '../service.ts';
import { UsageError } from '../errors.ts';
import { loadOrCreateLogKey } from '../audit/log-key.ts';
import { localActor } from '../auth/config-change.ts';
import { parsePeriod } from '../../reports/period.ts';
import { VERSION } from '../version.ts';
import { openCliLog } from '../cli/open-log.ts';
import { parseFlags, type Command } from '../cli/command.ts';
import { loadEvidenceConfig } from './config.ts';
import { loadOrCreateEvidenceKey } from './signing-key.ts';
import { EvidenceService, createEvidenceStore } from './bundle-service.ts';
import { evidenceReports } from './reports-source.ts';

const USAGE = 'auditgate bundle (--from ISO --to ISO | --period 2026-10|2026-Q3|…) [--out FILE] [--json]';

function date(flag: string, v: string): Date {
  const d = new Date(/^\d{4}-\d{2}-\d{2}$/.test(v) ? `${v}T00:00:00Z` : v);
  if (Number.isNaN(d.getTime())) throw new UsageError(`--${flag}: ${JSON.stringify(v)} is not an ISO 8601 date or time`);
  return d;
}

export const command: Command = {
  name: 'bundle',
  summary: "Build, verify, store and log one period's signed evidence bundle (records, checkpoints, proofs, reports).",
  usage: USAGE,
  async run(argv, io) {
    const { values } = parseFlags(argv, {
      from: { type: 'string' },
      to: { type: 'string' },
      period: { type: 'string' },
      out: { type: 'string' },
      json: { type: 'boolean' },
    });
    let from: Date;
    let to: Date;
    if (values.period) {
      if (values.from || values.to) throw new UsageError('give either --period or --from/--to');
      let p;
      try {
        p = parsePeriod(values.period);
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
      from = new Date(p.start);
      to = new Date(p.end);
    } else {
      if (!values.from || !values.to) throw new UsageError('--from and --to (or --period) are required');
      from = date('from', values.from);
      to = date('to', values.to);
    }
    const config = loadConfig(io.env, io.cwd);
    const ecfg = loadEvidenceConfig(io.env, config.dataDir, config.log.origin, io.cwd);
    const db = openDatabase(config);
    try {
      await migrate(db);
      const logSigner = await loadOrCreateLogKey(config.log.keyFile, config.log.origin);
      const log = await openCliLog(config, db);
      try {
        const service = new EvidenceService({
          db,
          log,
          logSigner,
          config: ecfg,
          store: createEvidenceStore(ecfg.store),
          evidenceKey: await loadOrCreateEvidenceKey(ecfg.keyFile),
          instance: `cli:${config.instanceId}`,
          version: VERSION,
          reports: evidenceReports({ db, log, env: io.env, dataDir: config.dataDir, cwd: io.cwd, instance: `cli:${config.instanceId}`, ...configuredReportScope(config, io.env, io.cwd) }),
        });
        const r = await service.bundle({ from, to, actor: localActor(), out: values.out ? resolve(io.cwd, values.out) : undefined });
        if (values.json) {
          io.out(JSON.stringify({ created: r.created, bundle: r.row, checks: r.checks }, null, 2));
          return 0;
        }
        for (const l of r.checks) io.out(`${l.status.padEnd(4)} ${l.check}: ${l.detail}`);
        io.out('');
        const b = r.row;
        io.out(
          b.endIndex > b.firstIndex
            ? `bundle ${b.bundleId}: records ${b.firstIndex}..${b.endIndex - 1} (${b.endIndex - b.firstIndex})`
            : `bundle ${b.bundleId}: no records in the period (the log's size was ${b.firstIndex} at both ends)`,
        );
        io.out(`archive SHA-256 ${b.archiveSha256} (${b.archiveSize} bytes), signed by ${b.signerKeyId}`);
        io.out(`stored at ${b.location} (checked by ${b.verifiedBy}${b.retentionMode ? `; ${b.retentionMode} until ${b.retainUntil}` : ''})`);
        io.out(r.created ? `recorded in the audit log as entry ${b.logIdx}` : `already produced earlier with the same bytes (log entry ${b.logIdx}); nothing new recorded`);
        if (values.out) io.out(`written to ${values.out}`);
        return 0;
      } finally {
        await log.close();
      }
    } finally {
      await db.destroy();
    }
  },
};
