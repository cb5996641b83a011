// C2SP tlog-tiles read paths under /log/tile/, so generic transparency-log clients (which expect
// <prefix>/checkpoint, <prefix>/tile/<L>/<N>[.p/<W>] and <prefix>/tile/entries/<N>[.p/<W>])
// can mirror and check our log. The hashes come from the same stored-hash rows as every proof.
import type Hapi from '@hapi/hapi';
import Boom from '@hapi/boom';
import { LogRangeError, type AuditLog } from '../audit/log.ts';
import type { LogStore } from '../audit/log-store.ts';

/** Hashes (or entries) per full tile, and tree levels per tile level. */
export const TILE_WIDTH = 256;
const TILE_HEIGHT = 8;
/** Tile level 6 nodes already cover 2^48 leaves; level 7 would pass 2^53. */
const MAX_TILE_LEVEL = 6;
/** An entry bundle prefixes each entry with a uint16 length. */
const MAX_BUNDLED_ENTRY = 0xffff;

export interface TileRef {
  /** Tile level, or 'entries' for an entry bundle. */
  level: number | 'entries';
  index: number;
  /** 256 for a full tile, 1..255 for a partial one. */
  width: number;
}

/** The tile index as path elements: 3-digit groups, all but the last prefixed with "x". */
export function tileIndexPath(index: number): string {
  const groups: string[] = [];
  let n = index;
  do {
    groups.unshift(String(n % 1000).padStart(3, '0'));
    n = Math.floor(n / 1000);
  } while (n > 0);
  return groups.map((g, i) => (i < groups.length - 1 ? `x${g}` : g)).join('/');
}

export function tilePath(t: TileRef): string {
  return `${t.level}/${tileIndexPath(t.index)}${t.width < TILE_WIDTH ? `.p/${t.width}` : ''}`;
}

/** Parses the part after /log/tile/ strictly: only the canonical spelling of a tile is accepted. */
export function parseTilePath(path: string): TileRef {
  const bad = (why: string) => new LogRangeError(`tile path ${JSON.stringify(path.slice(0, 80))}: ${why}`);
  const parts = path.split('/');
  const head = parts.shift() ?? '';
  let level: number | 'entries';
  if (head === 'entries') level = 'entries';
  else if (/^[0-9]$/.test(head) && Number(head) <= MAX_TILE_LEVEL) level = Number(head);
  else throw bad(`the level must be 0..${MAX_TILE_LEVEL} or "entries"`);
  let width = TILE_WIDTH;
  const partial = parts.length >= 2 && /\.p$/.test(parts[parts.length - 2]!);
  if (partial) {
    const w = parts.pop()!;
    if (!/^[1-9][0-9]*$/.test(w) || Number(w) >= TILE_WIDTH) throw bad('a partial width must be 1..255');
    width = Number(w);
    parts[parts.length - 1] = parts[parts.length - 1]!.slice(0, -2);
  }
  if (parts.length === 0) throw bad('no tile index');
  const last = parts.pop()!;
  if (!/^[0-9]{3}$/.test(last) || parts.some((g) => !/^x[0-9]{3}$/.test(g))) {
    throw bad('the index must be 3-digit groups, all but the last prefixed with "x" (e.g. x001/234)');
  }
  const index = Number([...parts.map((g) => g.slice(1)), last].join(''));
  if (!Number.isSafeInteger(index)) throw bad('the index is too large');
  const ref = { level, index, width };
  if (tilePath(ref) !== path) throw bad(`not canonical; the same tile is ${tilePath(ref)}`);
  return ref;
}

/** Leaves the tree must have for every hash (or entry) of the tile to exist. */
function leavesNeeded(t: TileRef): number {
  const units = t.index * TILE_WIDTH + t.width;
  return t.level === 'entries' ? units : units * 2 ** (TILE_HEIGHT * t.level);
}

export interface TileSource extends AuditLog {
  readonly store: Pick<LogStore, 'readNodes'>;
}

async function requireAvailable(log: AuditLog, t: TileRef): Promise<void> {
  const { size } = await log.head();
  if (leavesNeeded(t) > size) {
    throw Boom.notFound(
      `tile ${t.level}/${tileIndexPath(t.index)} of width ${t.width} is not complete at tree size ${size}`,
    );
  }
}

// Every tile (full or partial) is a fixed prefix of the log and never changes once it exists.
const IMMUTABLE = 'max-age=31536000, immutable';
const BINARY = 'application/octet-stream';

export function registerTileRoutes(
  server: Hapi.Server,
  log: TileSource,
  entriesRoute: Hapi.RouteOptions,
): void {
  server.route({
    method: 'GET',
    path: '/log/tile/{path*}',
    options: { auth: false },
    handler: async (req, h) => {
      const t = parseTilePath(String(req.params.path ?? ''));
      if (t.level === 'entries') throw Boom.notFound('entry bundles are under /log/tile/entries/');
      await requireAvailable(log, t);
      const level = TILE_HEIGHT * t.level;
      const first = t.index * TILE_WIDTH;
      const hashes = await log.store.readNodes(
        Array.from({ length: t.width }, (_, i) => ({ level, index: first + i })),
      );
      return h.response(Buffer.concat(hashes)).type(BINARY).header('cache-control', `public, ${IMMUTABLE}`);
    },
  });

  // Entry bundles are audit data: the same access rule (and audit record) as /log/entries.
  server.route({
    method: 'GET',
    path: '/log/tile/entries/{path*}',
    options: entriesRoute,
    handler: async (req, h) => {
      const t = parseTilePath(`entries/${String(req.params.path ?? '')}`);
      await requireAvailable(log, t);
      const parts: Buffer[] = [];
      for await (const e of log.entries(t.index * TILE_WIDTH, t.index * TILE_WIDTH + t.width)) {
        if (e.data.length > MAX_BUNDLED_ENTRY) {
          // A bundle cannot hold it; cutting it would serve bytes that do not hash to the leaf.
          throw Boom.notImplemented(
            `entry ${e.index} is ${e.data.length} bytes; tlog-tiles entry bundles hold at most ${MAX_BUNDLED_ENTRY}: read it from /log/entries`,
          );
        }
        const len = Buffer.alloc(2);
        len.writeUInt16BE(e.data.length);
        parts.push(len, e.data);
      }
      return h.response(Buffer.concat(parts)).type(BINARY).header('cache-control', `private, ${IMMUTABLE}`);
    },
  });
}
