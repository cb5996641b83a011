// `auditgate log fsck`: the full check of the audit log directly in the local database (the same
// database and key the service uses, from the same environment). Read-only: it never migrates,
// never creates a key, never signs.
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadConfig } from '../config.ts';
import { openDatabase } from '../service.ts';
import { UsageError } from '../errors.ts';
import { LogStore } from '../audit/log-store.ts';
import { checkpointOpener, fsck, type FsckResult } from '../audit/log-check.ts';
import { loadLogKey } from '../audit/log-key.ts';
import { parseVerifierKey, verifierKey } from '../audit/note.ts';
import { parseFlags, type CliIo, type Command } from './command.ts';

const USAGE = 'auditgate log fsck [--vkey FILE|STRING] [--json]';

/** The verifier key: --vkey (a key line or a file holding one), else derived from the log's key file. */
async function resolveVkey(
  flag: string | undefined,
  io: CliIo,
  keyFile: string,
  origin: string,
): Promise<string> {
  if (flag === undefined) return verifierKey(await loadLogKey(keyFile, origin));
  const inline = flag.trim();
  const candidates = [inline];
  const file = resolve(io.cwd, flag);
  if (existsSync(file)) candidates.push(readFileSync(file, 'utf8').trim());
  for (const c of candidates) {
    try {
      parseVerifierKey(c);
      return c;
    } catch {
      // try the next reading
    }
  }
  throw new UsageError(`--vkey: ${JSON.stringify(flag)} is neither a verifier key nor a file holding one`);
}

export function printFsck(r: FsckResult, io: CliIo): void {
  for (const c of r.checks) io.out(`${c.ok ? 'PASS' : 'FAIL'} ${c.name}: ${c.detail}`);
  if (!r.ok) {
    io.out('');
    io.out('Problems:');
    for (const p of r.problems) io.out(`  ${p}`);
  }
  io.out('');
  io.out(
    `${r.ok ? 'PASS' : 'FAIL'} log fsck: ${r.entriesChecked} of ${r.size} entries and ${r.checkpointsChecked} checkpoints checked in ${r.durationMs} ms`,
  );
}

export const command: Command = {
  name: 'log fsck',
  summary:
    'Check the whole audit log in the local database: every entry re-hashed, every stored hash recomputed, ' +
    'every checkpoint signature, root and consistency, the state row. Exit 0 all passed, 1 a check failed.',
  usage: USAGE,
  async run(argv, io) {
    const { values } = parseFlags(argv, { vkey: { type: 'string' }, json: { type: 'boolean' } });
    const config = loadConfig(io.env, io.cwd);
    const vkey = await resolveVkey(values.vkey, io, config.log.keyFile, config.log.origin);
    // The checkpoint origin is the verifier key's name (the log's key is named after its origin).
    const origin = vkey.slice(0, vkey.indexOf('+'));
    const db = openDatabase(config);
    try {
      const hasTables = await db.schema.hasTable('log_state');
      if (!hasTables) {
        io.out('FAIL database: no audit log tables (the service has never started on this database)');
        return 1;
      }
      const result = await fsck(new LogStore(db), { origin, open: checkpointOpener(vkey) });
      if (values.json) io.out(JSON.stringify(result, null, 2));
      else printFsck(result, io);
      return result.ok ? 0 : 1;
    } finally {
      await db.destroy();
    }
  },
};
