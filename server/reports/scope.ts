// What a report's entitlements are computed against — the configured targets and the per-tool
// policy — read from the configuration file the same way the service reads it. The service, its
// scheduled jobs and the CLIs must agree, or the same period would give different data hashes.
import type { Config } from '../config.ts';
import { parseGatewayConfig, readConfigDocument } from '../targets.ts';
import { PolicyEngine, parsePolicies } from '../policy/policy.ts';

export interface ReportScope {
  targetNames: () => string[];
  policy: () => PolicyEngine;
}

export function configuredReportScope(
  config: Pick<Config, 'configFile'>,
  env: Record<string, string | undefined>,
  cwd: string,
): ReportScope {
  const doc = readConfigDocument(config, cwd);
  const targets = parseGatewayConfig(doc, env).targets.map((t) => t.name);
  const policy = new PolicyEngine(parsePolicies(doc.doc.policies));
  return { targetNames: () => targets, policy: () => policy };
}
