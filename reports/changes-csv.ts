// CSV twin of the change log.
import type { ChangeLogData } from './changes.ts';
import { toCsv } from './csv.ts';

export function changeLogCsvs(d: ChangeLogData): Record<string, string> {
  return {
    'changes.csv': toCsv(
      [
        { header: 'leaf', value: (c) => c.leaf },
        { header: 'ts', value: (c) => c.ts },
        { header: 'author', value: (c) => c.author },
        { header: 'auth_method', value: (c) => c.authMethod },
        { header: 'kind', value: (c) => c.kind },
        { header: 'action', value: (c) => c.action },
        { header: 'object_id', value: (c) => c.objectId },
        { header: 'before_sha256', value: (c) => c.beforeSha256 },
        { header: 'after_sha256', value: (c) => c.afterSha256 },
        { header: 'summary', value: (c) => c.summary },
        { header: 'approver', value: (c) => c.approver },
        { header: 'approval_ref', value: (c) => c.approvalRef },
        { header: 'segregation', value: (c) => c.segregation },
      ],
      d.changes,
    ),
  };
}
