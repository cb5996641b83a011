// CSV twins of the activity report's tables (formula-injection safe via csv.ts).
import type { ActivityReportData } from './activity.ts';
import { toCsv } from './csv.ts';

export function activityCsvs(d: ActivityReportData): Record<string, string> {
  return {
    'daily.csv': toCsv(
      [
        { header: 'day', value: (r) => r.day },
        { header: 'requests', value: (r) => r.requests },
        { header: 'refused', value: (r) => r.refused },
        { header: 'errors', value: (r) => r.errors },
      ],
      d.daily,
    ),
    'targets.csv': toCsv(
      [
        { header: 'target', value: (r) => r.target },
        { header: 'requests', value: (r) => r.requests },
        { header: 'refused', value: (r) => r.refused },
        { header: 'errors', value: (r) => r.errors },
        { header: 'identities', value: (r) => r.identities },
        { header: 'tools', value: (r) => r.tools },
        { header: 'avg_latency_ms', value: (r) => r.avgLatencyMs },
        { header: 'max_latency_ms', value: (r) => r.maxLatencyMs },
      ],
      d.perTarget,
    ),
    'denials.csv': toCsv(
      [
        { header: 'subject', value: (r) => r.subject },
        { header: 'target', value: (r) => r.target },
        { header: 'tool', value: (r) => r.tool },
        { header: 'rule', value: (r) => r.rule },
        { header: 'count', value: (r) => r.n },
        { header: 'first_at', value: (r) => r.firstAt },
        { header: 'last_at', value: (r) => r.lastAt },
        { header: 'first_leaf', value: (r) => r.firstLeaf },
      ],
      d.denials,
    ),
    'anomalies.csv': toCsv(
      [
        { header: 'severity', value: (r) => r.severity },
        { header: 'kind', value: (r) => r.kind },
        { header: 'at', value: (r) => r.at },
        { header: 'subject', value: (r) => r.subject },
        { header: 'detail', value: (r) => r.detail },
        { header: 'leaf', value: (r) => r.leaf },
      ],
      d.anomalies,
    ),
  };
}
