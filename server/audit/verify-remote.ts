// Checks a running auditgate log over its HTTP API (docs/log-api.md) the way an outside auditor
// would: trusting only a verifier key and the checkpoint remembered from the previous run, never
// the server's own claims. The CLI (`auditgate verify-log`) and the tests share this core.
//
// Memory stays constant in the size of the log: entries and stored hashes are streamed page by
// page, line by line, into a Frontier (the tree's right edge), so a million entries need only
// the frontier's log2(n) hashes.
import canonicalizeModule from 'canonicalize';
import { EMPTY_ROOT, Frontier, ProofError, leafHash, storedHashCount, verifyConsistency } from './merkle.ts';
import { openNote, parseCheckpoint, parseVerifierKey } from './note.ts';

// The `canonicalize` package on purpose, not gateway/canonical.ts, which wrote the entries: the
// auditor's check is an independent implementation. (CommonJS typed as an ESM default export.)
const canonicalize = canonicalizeModule as unknown as (value: unknown) => string | undefined;

export type CheckStatus = 'PASS' | 'FAIL' | 'SKIP' | 'WARN';

export interface CheckLine {
  status: CheckStatus;
  check: string;
  detail: string;
}

/** What one successful run remembers for the next: the trust anchor and the last good checkpoint. */
export interface TrustedState {
  version: 1;
  origin: string;
  vkey: string;
  size: number;
  /** Base64 root hash at `size`. */
  root: string;
  /** The signed checkpoint note exactly as served, kept as evidence. */
  checkpoint: string;
  url: string;
  verifiedAt: string;
}

export interface RemoteVerifyOptions {
  /** Base URL of the service, e.g. http://127.0.0.1:8080 (the API lives under /log/). */
  url: string;
  /** A verifier key the auditor trusts; otherwise the state file's, otherwise (weak) the server's. */
  vkey?: string;
  /** The state remembered by the previous successful run. */
  state?: TrustedState;
  /**
   * Bearer credential (an API key or a token of an auditor) for /log/entries, which serves audit
   * data; the other routes are public. Sent only to this URL (redirects are refused).
   */
  token?: string;
  /** Entries per request (at most the server's cap, 10,000). */
  pageSize?: number;
  fetch?: typeof fetch;
  /** Called once per check as soon as it is decided, so long runs show progress. */
  report?: (line: CheckLine) => void;
}

export interface RemoteVerifyResult {
  ok: boolean;
  lines: CheckLine[];
  /** The state to remember, present only when every check passed. */
  newState?: TrustedState;
}

export const DEFAULT_PAGE_SIZE = 10_000;

/** Thrown for HTTP-level failures (status, transport), reported as FAIL of the check at hand. */
class FetchError extends Error {
  override name = 'FetchError';
}

const decoder = new TextDecoder('utf-8', { fatal: true });

function b64(buf: Uint8Array): string {
  return Buffer.from(buf).toString('base64');
}

/** Strict base64 of exactly 32 bytes (a hash); undefined for anything else. */
function hashFromB64(s: unknown): Buffer | undefined {
  if (typeof s !== 'string' || !/^[A-Za-z0-9+/]{43}=$/.test(s)) return undefined;
  const b = Buffer.from(s, 'base64');
  return b.length === 32 && b.toString('base64') === s ? b : undefined;
}

class LogClient {
  readonly #base: string;
  readonly #fetch: typeof fetch;
  readonly #token: string | undefined;

  constructor(url: string, fetchImpl: typeof fetch, token?: string) {
    this.#base = url.replace(/\/+$/, '');
    this.#fetch = fetchImpl;
    this.#token = token;
  }

  async #get(path: string, accept: string): Promise<Response> {
    const url = `${this.#base}${path}`;
    let res: Response | undefined;
    // GETs are idempotent: one retry covers a keep-alive socket the server closed just as it
    // was reused (ECONNRESET before any response).
    for (let attempt = 1; !res; attempt++) {
      try {
        const headers: Record<string, string> = { accept };
        if (this.#token) headers.authorization = `Bearer ${this.#token}`;
        res = await this.#fetch(url, { headers, redirect: 'error' });
      } catch (err) {
        if (attempt >= 2)
          throw new FetchError(`GET ${url}: ${(err as Error).cause ?? (err as Error).message}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    if (!res.ok) {
      const text = (await res.text().catch(() => '')).slice(0, 500);
      let message = text;
      try {
        message = (JSON.parse(text) as { message?: string }).message ?? text;
      } catch {
        // not JSON: keep the text
      }
      const hint =
        res.status === 401 || res.status === 403
          ? this.#token
            ? ' (the credential was refused or lacks the auditor role)'
            : ' (entries are audit data: pass an auditor API key in AUDITGATE_TOKEN or --token-file)'
          : '';
      throw new FetchError(`GET ${path}: HTTP ${res.status}${message ? `: ${message}` : ''}${hint}`);
    }
    return res;
  }

  async text(path: string): Promise<string> {
    const res = await this.#get(path, 'text/plain');
    return decoder.decode(await res.arrayBuffer());
  }

  async json(path: string): Promise<unknown> {
    const res = await this.#get(path, 'application/json');
    try {
      return JSON.parse(decoder.decode(await res.arrayBuffer()));
    } catch (err) {
      throw new FetchError(`GET ${path}: response is not JSON: ${(err as Error).message}`);
    }
  }

  async lines(path: string): Promise<LineReader> {
    const res = await this.#get(path, 'application/x-ndjson');
    if (!res.body) throw new FetchError(`GET ${path}: empty response`);
    return new LineReader(res.body);
  }
}

/** Splits a byte stream on "\n" without holding more than the current line and one chunk. */
class LineReader {
  readonly #it: AsyncIterator<Uint8Array>;
  #pending: Buffer[] = [];
  #chunk: Buffer = Buffer.alloc(0);
  #done = false;
  /** Set when the stream ended with bytes after the last "\n" (a cut-off response). */
  unterminated = false;

  constructor(body: ReadableStream<Uint8Array>) {
    this.#it = (body as unknown as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
  }

  /** The next line without its "\n", or undefined at the end of the stream. */
  async next(): Promise<Buffer | undefined> {
    for (;;) {
      const nl = this.#chunk.indexOf(0x0a);
      if (nl >= 0) {
        const part = this.#chunk.subarray(0, nl);
        this.#chunk = this.#chunk.subarray(nl + 1);
        if (this.#pending.length === 0) return Buffer.from(part);
        const line = Buffer.concat([...this.#pending, part]);
        this.#pending = [];
        return line;
      }
      if (this.#chunk.length) this.#pending.push(Buffer.from(this.#chunk));
      this.#chunk = Buffer.alloc(0);
      if (this.#done) {
        if (this.#pending.length) this.unterminated = true;
        this.#pending = [];
        return undefined;
      }
      const r = await this.#it.next();
      if (r.done) this.#done = true;
      else this.#chunk = Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
    }
  }

  async close(): Promise<void> {
    await this.#it.return?.();
  }
}

/** The first problem of one kind seen while streaming, plus how many more followed. */
class FirstProblem {
  index: number | undefined;
  detail = '';
  count = 0;

  note(index: number, detail: string): void {
    this.count++;
    if (this.index === undefined) {
      this.index = index;
      this.detail = detail;
    }
  }

  get found(): boolean {
    return this.index !== undefined;
  }

  describe(): string {
    const more =
      this.count > 1 ? ` (${this.count - 1} more problem${this.count > 2 ? 's' : ''} after it)` : '';
    return `first bad index ${this.index}: ${this.detail}${more}`;
  }
}

function isCanonicalJson(line: Buffer): boolean {
  try {
    const text = decoder.decode(line);
    return canonicalize(JSON.parse(text)) === text;
  } catch {
    return false;
  }
}

export async function verifyRemoteLog(opts: RemoteVerifyOptions): Promise<RemoteVerifyResult> {
  const lines: CheckLine[] = [];
  const emit = (status: CheckStatus, check: string, detail: string) => {
    const line = { status, check, detail };
    lines.push(line);
    opts.report?.(line);
  };
  const result = (): RemoteVerifyResult => ({ ok: !lines.some((l) => l.status === 'FAIL'), lines });
  const client = new LogClient(opts.url, opts.fetch ?? fetch, opts.token);
  const pageSize = opts.pageSize ?? DEFAULT_PAGE_SIZE;
  if (!Number.isSafeInteger(pageSize) || pageSize < 1)
    throw new RangeError(`page size must be ≥ 1, got ${pageSize}`);
  const state = opts.state;

  // 1. The trust anchor.
  let vkeyText: string;
  let vkeySource: string;
  if (opts.vkey !== undefined) {
    vkeyText = opts.vkey.trim();
    vkeySource = 'given';
    if (state && state.vkey !== vkeyText) {
      emit(
        'FAIL',
        'vkey',
        `the given key ${vkeyText} is not the key remembered in the state file (${state.vkey}); a different key means a different log: use a new state file`,
      );
      return result();
    }
  } else if (state) {
    vkeyText = state.vkey;
    vkeySource = 'from the state file';
  } else {
    try {
      vkeyText = (await client.text('/log/vkey')).trim();
    } catch (err) {
      emit('FAIL', 'vkey', (err as Error).message);
      return result();
    }
    vkeySource = 'fetched from the server';
    emit(
      'WARN',
      'vkey',
      'no --vkey and no state file: trusting the key the server itself sends (trust on first use). ' +
        'A server that was already compromised passes this check; get the key from the log operator out of band and pass --vkey.',
    );
  }
  let verifier: ReturnType<typeof parseVerifierKey>;
  try {
    verifier = parseVerifierKey(vkeyText);
  } catch (err) {
    emit('FAIL', 'vkey', `not a valid verifier key: ${(err as Error).message}`);
    return result();
  }
  emit('PASS', 'vkey', `${vkeyText} (${vkeySource})`);

  // 2. The checkpoint and its signature.
  let noteText: string;
  try {
    noteText = await client.text('/log/checkpoint');
  } catch (err) {
    emit('FAIL', 'checkpoint', (err as Error).message);
    return result();
  }
  let cp: { origin: string; size: number; root: Buffer };
  try {
    const note = openNote(noteText, [verifier]);
    cp = parseCheckpoint(note.body);
  } catch (err) {
    emit('FAIL', 'signature', `checkpoint rejected: ${(err as Error).message}`);
    return result();
  }
  emit(
    'PASS',
    'signature',
    `checkpoint of ${cp.origin} at size ${cp.size} with root ${b64(cp.root)} is signed by ${verifier.name}`,
  );
  if (cp.origin !== verifier.name) {
    emit('FAIL', 'origin', `checkpoint origin ${cp.origin} differs from the key name ${verifier.name}`);
    return result();
  }
  if (state && state.origin !== cp.origin) {
    emit(
      'FAIL',
      'origin',
      `checkpoint origin ${cp.origin} differs from the remembered origin ${state.origin}`,
    );
    return result();
  }

  // 3. Consistency with the checkpoint remembered from the last run.
  const stateRoot = state ? hashFromB64(state.root) : undefined;
  if (state && !stateRoot) {
    emit('FAIL', 'consistency', 'the state file has no valid root hash');
  } else if (!state || !stateRoot) {
    emit(
      'SKIP',
      'consistency',
      'no remembered checkpoint (first run or no --state): nothing to compare with',
    );
  } else if (state.size > cp.size) {
    emit(
      'FAIL',
      'consistency',
      `rollback: the checkpoint has size ${cp.size} but size ${state.size} was verified before; the log lost ${state.size - cp.size} entries`,
    );
  } else if (state.size === cp.size) {
    if (stateRoot.equals(cp.root))
      emit('PASS', 'consistency', `same size ${cp.size} and root as the last run`);
    else
      emit(
        'FAIL',
        'consistency',
        `fork: size ${cp.size} again but the root differs from the last run (${state.root})`,
      );
  } else if (state.size === 0) {
    emit('PASS', 'consistency', `the remembered tree was empty; every tree extends it`);
  } else {
    try {
      const body = await client.json(`/log/proof/consistency?old=${state.size}&new=${cp.size}`);
      const hashes = proofHashes(body, { old: state.size, new: cp.size });
      verifyConsistency(state.size, cp.size, stateRoot, cp.root, hashes);
      emit(
        'PASS',
        'consistency',
        `size ${state.size} → ${cp.size}: the log only grew (proof of ${hashes.length} hashes verified)`,
      );
    } catch (err) {
      const why = err instanceof ProofError ? 'the proof does not verify' : 'no valid proof';
      emit(
        'FAIL',
        'consistency',
        `size ${state.size} → ${cp.size}: ${why} (${(err as Error).message}); the log was rewritten since the last run`,
      );
    }
  }

  // 4. Every entry and every stored hash, streamed.
  await scanLog(
    client,
    cp,
    pageSize,
    state && stateRoot ? { size: state.size, root: stateRoot } : undefined,
    emit,
  );

  const r = result();
  if (r.ok) {
    r.newState = {
      version: 1,
      origin: cp.origin,
      vkey: vkeyText,
      size: cp.size,
      root: b64(cp.root),
      checkpoint: noteText,
      url: opts.url,
      verifiedAt: new Date().toISOString(),
    };
  }
  return r;
}

function proofHashes(body: unknown, expect: Record<string, number>): Buffer[] {
  const o = body as Record<string, unknown>;
  for (const [k, v] of Object.entries(expect)) {
    if (o?.[k] !== v)
      throw new FetchError(`proof response has ${k}=${JSON.stringify(o?.[k])}, asked for ${v}`);
  }
  if (!Array.isArray(o.hashes)) throw new FetchError('proof response has no hashes array');
  return o.hashes.map((h, i) => {
    const b = hashFromB64(h);
    if (!b) throw new FetchError(`proof hash ${i} is not base64 of 32 bytes`);
    return b;
  });
}

async function scanLog(
  client: LogClient,
  cp: { size: number; root: Buffer },
  pageSize: number,
  remembered: { size: number; root: Buffer } | undefined,
  emit: (status: CheckStatus, check: string, detail: string) => void,
): Promise<void> {
  const frontier = new Frontier();
  const entryProblem = new FirstProblem();
  const hashProblem = new FirstProblem();
  let fetchProblem: string | undefined;
  let fetchIndex: number | undefined;
  let historyRoot: Buffer | undefined = remembered?.size === 0 ? Buffer.from(EMPTY_ROOT) : undefined;

  pages: for (let start = 0; start < cp.size; start += pageSize) {
    const end = Math.min(cp.size, start + pageSize);
    let entries: LineReader | undefined;
    let hashes: LineReader | undefined;
    let i = start;
    try {
      entries = await client.lines(`/log/entries?start=${start}&end=${end}`);
      hashes = await client.lines(`/log/hashes?start=${start}&end=${end}`);
      for (; i < end; i++) {
        const line = await entries.next();
        if (line === undefined) {
          const cut = entries.unterminated ? ' (the response ended in the middle of a line)' : '';
          entryProblem.note(i, `the server sent no entry ${i} (expected ${cp.size} entries)${cut}`);
          break pages;
        }
        if (!isCanonicalJson(line)) entryProblem.note(i, `entry ${i} is not RFC 8785 canonical JSON`);
        const leaf = leafHash(line);
        const recomputed = frontier.append(leaf);
        if (remembered && frontier.size === remembered.size) historyRoot = frontier.root();
        checkHashRow(i, recomputed, await hashes.next(), hashProblem);
      }
      if ((await entries.next()) !== undefined)
        entryProblem.note(end, `the server sent more than ${end - start} entries for ${start}..${end}`);
      if ((await hashes.next()) !== undefined)
        hashProblem.note(end, `the server sent more than ${end - start} hash rows for ${start}..${end}`);
    } catch (err) {
      const e = err as Error;
      if (e instanceof FetchError) {
        // The page was refused as a whole (credential, range, server error): no index is at fault.
        fetchProblem = e.message;
      } else {
        fetchIndex = i;
        fetchProblem = `first bad index ${i}: the response broke off: ${e.cause ?? e.message} (reading the page ${start}..${end})`;
      }
      break;
    } finally {
      await entries?.close().catch(() => {});
      await hashes?.close().catch(() => {});
    }
  }

  const complete = !fetchProblem && !entryProblem.found && frontier.size === cp.size;
  if (fetchProblem) emit('FAIL', 'entries', fetchProblem);
  else if (entryProblem.found) emit('FAIL', 'entries', entryProblem.describe());
  else emit('PASS', 'entries', `${cp.size} entries downloaded, each canonical JSON`);

  if (hashProblem.found) emit('FAIL', 'hashes', hashProblem.describe());
  else if (frontier.size < cp.size) {
    emit(
      'FAIL',
      'hashes',
      `checked ${frontier.size} of ${cp.size} leaves; the rest could not be read (see entries)`,
    );
  } else
    emit(
      'PASS',
      'hashes',
      `every stored hash of ${frontier.size} leaves matches its recomputation from the entries`,
    );

  if (remembered) {
    if (historyRoot === undefined) {
      emit('FAIL', 'history', `could not recompute the root at the remembered size ${remembered.size}`);
    } else if (historyRoot.equals(remembered.root)) {
      emit(
        'PASS',
        'history',
        `the first ${remembered.size} entries still hash to the root remembered from the last run`,
      );
    } else {
      emit(
        'FAIL',
        'history',
        `the first ${remembered.size} entries now hash to ${b64(historyRoot)}, not to the remembered root ${b64(remembered.root)}: entries before index ${remembered.size} were changed`,
      );
    }
  }

  const recomputed = frontier.root();
  if (complete && recomputed.equals(cp.root)) {
    emit('PASS', 'root', `the root recomputed from ${cp.size} entries equals the checkpoint root`);
    return;
  }
  const where = [entryProblem.index, hashProblem.index, fetchIndex]
    .filter((x): x is number => x !== undefined)
    .sort((a, b) => a - b)[0];
  const parts = complete
    ? [
        `the root recomputed from ${cp.size} entries is ${b64(recomputed)}, the checkpoint says ${b64(cp.root)}`,
      ]
    : [
        `only ${frontier.size} of ${cp.size} entries could be read, so the checkpoint root cannot be reproduced`,
      ];
  if (where !== undefined) parts.push(`first bad index ${where}`);
  else if (complete) {
    parts.push(
      'the stored hashes agree with the entries, so both were rewritten together; the altered index cannot be located from the server data',
    );
  }
  emit('FAIL', 'root', parts.join('; '));
}

function checkHashRow(
  i: number,
  recomputed: Buffer[],
  line: Buffer | undefined,
  problem: FirstProblem,
): void {
  if (line === undefined) {
    problem.note(i, `the server sent no stored-hash row for index ${i}`);
    return;
  }
  let row: { index?: unknown; hashes?: unknown };
  try {
    row = JSON.parse(decoder.decode(line)) as typeof row;
  } catch {
    problem.note(i, `stored-hash row ${i} is not JSON`);
    return;
  }
  if (row.index !== i) {
    problem.note(i, `stored-hash row for index ${i} says index ${JSON.stringify(row.index)}`);
    return;
  }
  const want = storedHashCount(i);
  if (!Array.isArray(row.hashes) || row.hashes.length !== want) {
    problem.note(
      i,
      `index ${i} should have ${want} stored hashes, the server has ${Array.isArray(row.hashes) ? row.hashes.length : 'none'}`,
    );
    return;
  }
  for (let pos = 0; pos < want; pos++) {
    const got = hashFromB64(row.hashes[pos]);
    const exp = recomputed[pos]!;
    if (got && got.equals(exp)) continue;
    const shown = got ? b64(got) : JSON.stringify(row.hashes[pos]);
    if (pos === 0) {
      problem.note(i, `entry ${i} hashes to ${b64(exp)} but the stored leaf hash is ${shown}`);
    } else {
      const from = i + 1 - 2 ** pos;
      problem.note(
        i,
        `stored hash ${pos} of index ${i} (subtree of leaves ${from}..${i}) is ${shown}, recomputed from the entries: ${b64(exp)}`,
      );
    }
    return;
  }
}
