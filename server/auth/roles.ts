// The fixed set of roles auditgate understands. Identity providers' groups and claims are mapped
// onto these by configuration; nothing else is ever trusted as a role.

export const ROLES = ['admin', 'compliance', 'auditor', 'approver', 'agent', 'monitor'] as const;
export type Role = (typeof ROLES)[number];

export function isRole(s: string): s is Role {
  return (ROLES as readonly string[]).includes(s);
}

/** Roles that may read audit data (the log, reports, bundles). */
export const AUDIT_READ_ROLES: readonly Role[] = ['auditor', 'compliance', 'admin'];

/** Role an identity needs to send MCP traffic through the gateway. */
export const MCP_ROLE: Role = 'agent';

/** Roles that may scrape /metrics: `monitor` reads nothing else (a Prometheus credential). */
export const METRICS_ROLES: readonly Role[] = ['monitor', 'admin'];
