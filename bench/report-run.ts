// One measured report run, in its own process so its peak RSS is the report's alone.
// argv: <kind> <period> <outDir>; env: AUDITGATE_DATA_DIR / DATABASE_URL / AUDITGATE_LOG_ORIGIN.
// Prints one JSON line: {kind, ms, maxRssMiB, dataHash, pdfBytes, lines}.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../server/config.ts';
import { openDatabase } from '../server/service.ts';
import { openCliLog } from '../server/cli/open-log.ts';
import { generateReport, type ReportKind } from '../server/reports/generate.ts';
import { parseReportsConfig } from '../server/reports/report-config.ts';
import { parsePeriod } from '../reports/period.ts';

const [kind, periodText, outDir] = process.argv.slice(2) as [ReportKind, string, string];
const config = loadConfig(process.env, process.cwd());
const db = openDatabase(config);
const log = await openCliLog(config, db);
const t0 = performance.now();
const timings: Record<string, number> = {};
const out = await generateReport(
  { db, log, config: parseReportsConfig({ dormant_days: 45 }), instance: 'bench' },
  kind,
  parsePeriod(periodText),
  { generatedAt: new Date().toISOString(), trigger: 'cli' },
  { csv: true, timings },
);
const ms = performance.now() - t0;
writeFileSync(join(outDir, `${kind}.pdf`), out.pdf!);
writeFileSync(join(outDir, `${kind}.json`), out.json);
const data = JSON.parse(out.json.toString('utf8'));
process.stdout.write(
  `${JSON.stringify({ kind, ms: Math.round(ms), maxRssMiB: Math.round(process.resourceUsage().maxRSS / 1024), dataHash: out.dataHash, pdfBytes: out.pdf!.length, lines: data.lines?.length ?? null, requests: data.totals?.requests ?? null, timings })}\n`,
);
await log.close();
await db.destroy();
