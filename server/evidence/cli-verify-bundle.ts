// `auditgate verify-bundle FILE`: checks an evidence bundle offline (a .tar.gz or the directory it
// was extracted to) with nothing but Node: no database, no configuration, no network. Keys come
// from the auditor (--vkey, --signer-key); without them the bundle's own copies are used and the
// output says so. One PASS/FAIL/SKIP/WARN line per check; exit 0 when none failed, 1 otherwise.
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { UsageError } from '../errors.ts';
import { parseVerifierKey } from '../audit/note.ts';
import { parseFlags, type Command } from '../cli/command.ts';
import { parseSignerKey, verifyBundle } from './verify.ts';

const USAGE =
  'auditgate verify-bundle FILE [--vkey FILE|KEY] [--signer-key FILE] [--previous FILE] [--namespace NS] [--json]';

function readVkey(flag: string, cwd: string): string {
  const file = resolve(cwd, flag);
  const text = existsSync(file) ? readFileSync(file, 'utf8').trim() : flag.trim();
  try {
    parseVerifierKey(text);
  } catch (err) {
    throw new UsageError(`--vkey: neither a C2SP verifier key nor a file holding one (${(err as Error).message})`);
  }
  return text;
}

function notes(lines: Array<{ status: string }>): string {
  const count = (st: string) => lines.filter((l) => l.status === st).length;
  const parts = [`${count('PASS')} passed`];
  if (count('WARN')) parts.push(`${count('WARN')} warnings`);
  if (count('SKIP')) parts.push(`${count('SKIP')} skipped`);
  return parts.join(', ');
}

export const command: Command = {
  name: 'verify-bundle',
  summary:
    'Verify an evidence bundle offline: manifest and no missing/extra file, manifest signature, checkpoint signatures, ' +
    'consistency proof, every record against the signed end root, report data hashes, chain to --previous. Exit 0 all passed, 1 a check failed.',
  usage: USAGE,
  async run(argv, io) {
    const { values, positionals } = parseFlags(
      argv,
      {
        vkey: { type: 'string' },
        'signer-key': { type: 'string' },
        previous: { type: 'string' },
        namespace: { type: 'string' },
        json: { type: 'boolean' },
      },
      true,
    );
    if (positionals.length !== 1) throw new UsageError('exactly one bundle FILE (or extracted directory) is required');
    const file = resolve(io.cwd, positionals[0]!);
    if (!existsSync(file)) throw new UsageError(`${positionals[0]}: no such file or directory`);
    const vkey = values.vkey ? readVkey(values.vkey, io.cwd) : undefined;
    let signerKey;
    if (values['signer-key']) {
      const p = resolve(io.cwd, values['signer-key']);
      if (!existsSync(p)) throw new UsageError(`--signer-key: ${values['signer-key']}: no such file`);
      try {
        signerKey = parseSignerKey(readFileSync(p, 'utf8'));
      } catch (err) {
        throw new UsageError(`--signer-key: ${(err as Error).message}`);
      }
    }
    const previous = values.previous ? resolve(io.cwd, values.previous) : undefined;
    if (previous && !existsSync(previous)) throw new UsageError(`--previous: ${values.previous}: no such file or directory`);

    const started = Date.now();
    const result = await verifyBundle(file, {
      vkey,
      signerKey,
      previous,
      namespace: values.namespace,
      report: values.json ? undefined : (l) => io.out(`${l.status.padEnd(4)} ${l.check}: ${l.detail}`),
    });
    const failed = result.lines.filter((l) => l.status === 'FAIL');
    const seconds = (Date.now() - started) / 1000;
    if (values.json) {
      io.out(JSON.stringify({ ok: result.ok, archive_sha256: result.archiveSha256 ?? null, records: result.records ?? null, checks: result.lines }, null, 2));
    } else {
      io.out('');
      io.out(
        result.ok
          ? `PASS verify-bundle: ${result.lines.length} checks (${notes(result.lines)}), ${result.records ?? 0} records, ${seconds.toFixed(1)} s`
          : `FAIL verify-bundle: ${failed.length} of ${result.lines.length} checks failed: ${failed.map((l) => l.check).join(', ')}`,
      );
    }
    return result.ok ? 0 : 1;
  },
};
