// `auditgate verify-log`: an auditor's check of a running log over HTTP, trusting only a
// verifier key and the state file written by the previous successful run.
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { UsageError } from '../errors.ts';
import { parseVerifierKey } from '../audit/note.ts';
import { DEFAULT_PAGE_SIZE, verifyRemoteLog, type TrustedState } from '../audit/verify-remote.ts';
import { parseFlags, type Command } from './command.ts';

const USAGE =
  'auditgate verify-log [--url URL] [--vkey FILE|STRING] [--state FILE] [--token-file FILE] [--page-size N]\n' +
  '  (the bearer credential for /log/entries comes from --token-file or AUDITGATE_TOKEN, never the command line)';

/** --vkey takes the key line itself or a file holding it. */
function readVkey(value: string, cwd: string): string {
  const inline = value.trim();
  try {
    parseVerifierKey(inline);
    return inline;
  } catch {
    // not a key line: a file name then
  }
  const file = resolve(cwd, value);
  if (!existsSync(file))
    throw new UsageError(`--vkey: ${JSON.stringify(value)} is neither a verifier key nor a file`);
  const line = readFileSync(file, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .find((l) => l !== '');
  if (!line) throw new UsageError(`--vkey: ${file} is empty`);
  return line;
}

/** Reads the state file; undefined when it does not exist yet (the first run). */
function readState(file: string): TrustedState | undefined {
  if (!existsSync(file)) return undefined;
  const s = JSON.parse(readFileSync(file, 'utf8')) as TrustedState;
  if (
    s?.version !== 1 ||
    typeof s.vkey !== 'string' ||
    typeof s.origin !== 'string' ||
    !Number.isSafeInteger(s.size) ||
    s.size < 0 ||
    typeof s.root !== 'string'
  ) {
    throw new Error('not an auditgate verify-log state file (version 1)');
  }
  return s;
}

/** Write-then-rename so a crash never leaves a half-written trust anchor. */
function writeState(file: string, state: TrustedState): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, file);
}

export const command: Command = {
  name: 'verify-log',
  summary:
    'Verify a running log over HTTP: checkpoint signature, consistency with the last run (--state), ' +
    'every entry and stored hash against the signed root. Prints PASS/FAIL per check; exit 0 all passed, 1 a check failed, 2 usage.',
  usage: USAGE,
  async run(argv, io) {
    const { values } = parseFlags(argv, {
      url: { type: 'string' },
      vkey: { type: 'string' },
      state: { type: 'string' },
      'page-size': { type: 'string' },
      'token-file': { type: 'string' },
    });
    const url = values.url ?? 'http://127.0.0.1:8080';
    try {
      const u = new URL(url);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('not http(s)');
    } catch {
      throw new UsageError(`--url: ${JSON.stringify(url)} is not an http(s) URL`);
    }
    let pageSize = DEFAULT_PAGE_SIZE;
    if (values['page-size'] !== undefined) {
      pageSize = Number(values['page-size']);
      if (!/^[1-9][0-9]*$/.test(values['page-size']) || pageSize > DEFAULT_PAGE_SIZE) {
        throw new UsageError(
          `--page-size: expected 1..${DEFAULT_PAGE_SIZE}, got ${JSON.stringify(values['page-size'])}`,
        );
      }
    }
    const vkey = values.vkey !== undefined ? readVkey(values.vkey, io.cwd) : undefined;
    let token = io.env.AUDITGATE_TOKEN?.trim() || undefined;
    if (values['token-file'] !== undefined) {
      const file = resolve(io.cwd, values['token-file']);
      if (!existsSync(file)) throw new UsageError(`--token-file: ${file} does not exist`);
      token = readFileSync(file, 'utf8').trim();
      if (!token) throw new UsageError(`--token-file: ${file} is empty`);
    }
    const stateFile = values.state !== undefined ? resolve(io.cwd, values.state) : undefined;
    let state: TrustedState | undefined;
    if (stateFile) {
      try {
        state = readState(stateFile);
      } catch (err) {
        io.out(`FAIL state: cannot use ${stateFile}: ${(err as Error).message}`);
        return 1;
      }
    }

    const r = await verifyRemoteLog({
      url,
      vkey,
      state,
      token,
      pageSize,
      report: (l) => io.out(`${l.status} ${l.check}: ${l.detail}`),
    });
    if (!r.ok || !r.newState) {
      if (stateFile) io.out(`state file ${stateFile} left unchanged`);
      return 1;
    }
    if (stateFile) {
      try {
        writeState(stateFile, r.newState);
      } catch (err) {
        io.out(`FAIL state: cannot write ${stateFile}: ${(err as Error).message}`);
        return 1;
      }
      io.out(`PASS state: remembered size ${r.newState.size} in ${stateFile}`);
    }
    return 0;
  },
};
