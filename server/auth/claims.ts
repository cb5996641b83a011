// From IdP claims to auditgate's vocabulary: groups (for policy) and roles (for access). Only the
// configured claims are read, and only the fixed role names can come out.
import type { RoleMapping } from './identity-config.ts';
import type { Role } from './roles.ts';

/** Reads a dot path (`realm_access.roles`) from a claims object; strings and string arrays only. */
export function claimValues(claims: Record<string, unknown>, path: string): string[] {
  // A literal key with dots (Auth0 namespaced claims: https://example.com/groups) wins over a path.
  let v: unknown = path in claims ? claims[path] : undefined;
  if (v === undefined) {
    v = claims;
    for (const part of path.split('.')) {
      if (v === null || typeof v !== 'object' || Array.isArray(v)) return [];
      v = (v as Record<string, unknown>)[part];
    }
  }
  if (typeof v === 'string') return [v];
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string');
  return [];
}

export function groupsOf(claims: Record<string, unknown>, mapping: RoleMapping): string[] {
  const out = new Set<string>();
  for (const c of mapping.groupClaims) for (const g of claimValues(claims, c)) out.add(g);
  return [...out];
}

export function rolesFor(groups: string[], mapping: RoleMapping): Role[] {
  const out = new Set<Role>(mapping.defaultRoles);
  for (const g of groups) for (const r of mapping.groupRoles[g] ?? []) out.add(r);
  return [...out].sort();
}

/** Scopes from `scope` (RFC 9068, space-separated) or `scp` (Okta, Entra: array or string). */
export function scopesOf(claims: Record<string, unknown>): string[] {
  const raw = claims.scope ?? claims.scp;
  if (typeof raw === 'string') return raw.split(' ').filter(Boolean);
  if (Array.isArray(raw)) return raw.filter((x): x is string => typeof x === 'string');
  return [];
}

/** The OAuth client behind a token: client_id (RFC 9068), azp (OIDC) or appid (Entra v1). */
export function clientIdOf(claims: Record<string, unknown>): string | undefined {
  for (const k of ['client_id', 'azp', 'appid']) {
    const v = claims[k];
    if (typeof v === 'string' && v) return v;
  }
  return undefined;
}
