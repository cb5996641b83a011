// The read-only HTTP API auditors use to check the audit log without trusting us: the signed
// checkpoint, the verifier key, inclusion and consistency proofs, the exact entry bytes and the
// stored tree hashes. Paths and formats are documented in docs/log-api.md; auditors' tools
// depend on them, so they never change shape.
import { Readable } from 'node:stream';
import type Hapi from '@hapi/hapi';
import Boom from '@hapi/boom';
import { LogRangeError, type AuditLog } from '../audit/log.ts';
import { LogCorruptError, type LogStore } from '../audit/log-store.ts';
import { EMPTY_ROOT, HASH_SIZE } from '../audit/merkle.ts';
import { formatCheckpoint, signNote, type NoteSigner } from '../audit/note.ts';
import { registerTileRoutes } from './log-tiles.ts';

/** Most entries (or hash rows) one request may ask for; clients page through larger ranges. */
export const MAX_RANGE = 10_000;

/** What the API reads besides the AuditLog contract: the verifier key and the raw stored rows. */
export interface LogApiSource extends AuditLog {
  /** The C2SP verifier key line of the log's signing key, `<name>+<hex id>+<base64>`. */
  readonly vkey: string;
  readonly store: Pick<LogStore, 'pages' | 'readNodes'>;
}

export interface LogApiOptions {
  log: LogApiSource;
  /**
   * The signed size-0 checkpoint (see emptyCheckpointNote), served while the log is empty so an
   * auditor can pin the key and the empty tree before the first entry.
   */
  emptyCheckpoint?: string;
  /**
   * Route options for /log/entries, the one route here that serves audit data (the rest are
   * hashes, proofs and signatures). The service passes the identity strategy, the roles that may
   * read (auditor, compliance, admin) and `plugins.auditgate` so each read is itself recorded.
   * Without it the entries are open (the log API on its own, in tests).
   */
  entriesRoute?: Pick<Hapi.RouteOptions, 'auth' | 'plugins'>;
}

/**
 * The checkpoint of the empty tree. It is consistent with every later tree, so signing it
 * (deterministically: Ed25519) never breaks the "no two inconsistent checkpoints" rule.
 */
export function emptyCheckpointNote(origin: string, signer: NoteSigner): string {
  return signNote(formatCheckpoint({ origin, size: 0, root: Buffer.from(EMPTY_ROOT) }), [signer]);
}

type Query = Hapi.Request['query'];

const DECIMAL = /^(0|[1-9][0-9]*)$/;

/** Strict query parsing: one canonical decimal per name, nothing unknown, nothing repeated. */
function params<K extends string>(query: Query, names: readonly K[]): Record<K, number> {
  for (const key of Object.keys(query)) {
    if (!(names as readonly string[]).includes(key)) {
      throw new LogRangeError(`unknown parameter '${key}' (expected ${names.join(', ')})`);
    }
  }
  const out = {} as Record<K, number>;
  for (const name of names) {
    const raw: unknown = query[name];
    if (raw === undefined) throw new LogRangeError(`missing parameter '${name}'`);
    if (typeof raw !== 'string') throw new LogRangeError(`parameter '${name}' given more than once`);
    if (!DECIMAL.test(raw)) {
      throw new LogRangeError(
        `parameter '${name}' must be a non-negative decimal integer without sign or leading zeros, got ${JSON.stringify(raw.slice(0, 40))}`,
      );
    }
    const n = Number(raw);
    if (!Number.isSafeInteger(n))
      throw new LogRangeError(`parameter '${name}' is too large: ${raw.slice(0, 40)}`);
    out[name] = n;
  }
  return out;
}

async function committedSize(log: AuditLog): Promise<number> {
  return (await log.head()).size;
}

function b64(hashes: Buffer[]): string[] {
  return hashes.map((h) => h.toString('base64'));
}

/** [start, end) must lie in the committed tree and be at most MAX_RANGE long. */
async function checkRange(log: AuditLog, query: Query): Promise<{ start: number; end: number }> {
  const { start, end } = params(query, ['start', 'end'] as const);
  if (start > end) throw new LogRangeError(`start ${start} is greater than end ${end}`);
  if (end - start > MAX_RANGE) {
    throw new LogRangeError(
      `range ${start}..${end} has ${end - start} entries; at most ${MAX_RANGE} per request`,
    );
  }
  const size = await committedSize(log);
  if (end > size) throw new LogRangeError(`end ${end} is beyond the committed tree size ${size}`);
  return { start, end };
}

/** An async iterable as a byte stream with back-pressure, so a page is never built in memory. */
function ndjson<T>(rows: AsyncIterable<T>, line: (row: T) => Buffer): Readable {
  return Readable.from(
    (async function* () {
      for await (const row of rows) yield line(row);
    })(),
    { objectMode: false },
  );
}

/**
 * Entries until the store turns out to miss one. The status line is long gone by then, and
 * aborting the connection would throw away the good lines before the gap in transit; ending
 * cleanly lets a client that counts lines (as it must: docs/log-api.md) name the missing index.
 */
async function* upToFirstGap<T>(rows: AsyncIterable<T>): AsyncGenerator<T> {
  try {
    yield* rows;
  } catch (err) {
    if (!(err instanceof LogCorruptError)) throw err;
  }
}

const NEWLINE = Buffer.from('\n');
const NDJSON = 'application/x-ndjson';
const TEXT = 'text/plain; charset=utf-8';

export const logApiPlugin: Hapi.Plugin<LogApiOptions> = {
  name: 'auditgate-log-api',
  register(server, { log, emptyCheckpoint, entriesRoute }) {
    if (!log || typeof log.vkey !== 'string' || !log.store)
      throw new Error('logApiPlugin needs { log } with vkey and store');
    const get = (
      path: string,
      handler: Hapi.Lifecycle.Method,
      options: Hapi.RouteOptions = { auth: false },
    ) => server.route({ method: 'GET', path, options, handler });

    get('/log/checkpoint', async (_req, h) => {
      // A grown tree without a checkpoint yet (the timer has not fired) is signed on demand.
      let note = ((await log.latestCheckpoint()) ?? (await log.checkpoint()))?.note;
      if (note === undefined && (await committedSize(log)) === 0) note = emptyCheckpoint;
      if (note === undefined) throw Boom.notFound('the log has not signed a checkpoint yet');
      return h.response(note).type(TEXT).header('cache-control', 'no-cache');
    });

    get('/log/vkey', (_req, h) => h.response(`${log.vkey}\n`).type(TEXT));

    get('/log/proof/inclusion', async (req) => {
      const { index, size } = params(req.query, ['index', 'size'] as const);
      if (index >= size) throw new LogRangeError(`index ${index} must be less than size ${size}`);
      const committed = await committedSize(log);
      if (size > committed)
        throw new LogRangeError(`size ${size} is beyond the committed tree size ${committed}`);
      return { index, size, hashes: b64(await log.inclusionProof(index, size)) };
    });

    get('/log/proof/consistency', async (req) => {
      const { old, new: newSize } = params(req.query, ['old', 'new'] as const);
      if (old === 0)
        throw new LogRangeError('old must be at least 1: nothing can be proved about an empty tree');
      if (old > newSize) throw new LogRangeError(`old ${old} is greater than new ${newSize}`);
      const committed = await committedSize(log);
      if (newSize > committed)
        throw new LogRangeError(`new ${newSize} is beyond the committed tree size ${committed}`);
      return { old, new: newSize, hashes: b64(await log.consistencyProof(old, newSize)) };
    });

    get(
      '/log/entries',
      async (req, h) => {
        const { start, end } = await checkRange(log, req.query);
        const body = ndjson(upToFirstGap(log.entries(start, end)), (e) => Buffer.concat([e.data, NEWLINE]));
        return h.response(body).type(NDJSON);
      },
      entriesRoute ? { auth: false, ...entriesRoute } : undefined,
    );

    registerTileRoutes(server, log, entriesRoute ? { auth: false, ...entriesRoute } : { auth: false });

    get('/log/hashes', async (req, h) => {
      const { start, end } = await checkRange(log, req.query);
      // Rows exactly as stored, gaps and odd lengths included: judging them is the auditor's job.
      const rows = (async function* () {
        for await (const page of log.store.pages(start, end, ['hashes'])) yield* page;
      })();
      const body = ndjson(rows, (r) => {
        const hashes: string[] = [];
        for (let o = 0; o < r.hashes.length; o += HASH_SIZE)
          hashes.push(r.hashes.subarray(o, o + HASH_SIZE).toString('base64'));
        return Buffer.from(`${JSON.stringify({ index: r.idx, hashes })}\n`);
      });
      return h.response(body).type(NDJSON);
    });
  },
};
