// The log's SQLite writer thread. better-sqlite3 blocks the thread that calls it for the whole
// commit, fsync included (≈ 0.3 ms or more per commit); on the gateway's event loop that stalled
// every request in flight. Here the commit waits on its own thread while the event loop goes on.
// The thread owns one connection to the database file; on an error it drops the connection and
// opens a new one for the next batch, so a database that comes back is used again.
import { createRequire } from 'node:module';
import { parentPort, workerData } from 'node:worker_threads';
import { prepareSqliteConnection, type PragmaConnection } from '../sqlite-connection.ts';
import { HASH_SIZE } from './merkle.ts';
import { sqliteRunner, type SqliteConnection, type SqliteRunner } from './sqlite-batch.ts';
import type { AuditEventRow } from './audit-events.ts';
import { unpack, type WriterReply, type WriterRequest } from './sqlite-packed.ts';

type Connection = SqliteConnection & PragmaConnection & { close(): void };
// better-sqlite3 ships no type declarations: the one constructor used here, typed by hand.
const Database = createRequire(import.meta.url)('better-sqlite3') as new (
  file: string,
  opts: { fileMustExist: boolean },
) => Connection;

const { file } = workerData as { file: string };
const port = parentPort!;
let db: Connection | undefined;
let run: SqliteRunner | undefined;

function open(): SqliteRunner {
  if (run) return run;
  // fileMustExist: the schema is migrated before the log opens; a file that vanished is an outage,
  // not a reason to start an empty database.
  db = new Database(file, { fileMustExist: true });
  prepareSqliteConnection(db);
  run = sqliteRunner(db);
  return run;
}

function drop(): void {
  try {
    db?.close();
  } catch {
    // Already broken; the next batch opens a new connection.
  }
  db = undefined;
  run = undefined;
}

// Ready: open now (a failure is retried with the first batch, which then reports it).
try {
  open();
} catch {
  drop();
}
port.postMessage({ id: 0, moved: true } satisfies WriterReply);

port.on('message', (req: WriterRequest) => {
  if ('close' in req) {
    drop();
    port.postMessage({ id: req.id, moved: false } satisfies WriterReply);
    return;
  }
  let reply: WriterReply;
  try {
    if ('index' in req) {
      open().index(JSON.parse(req.index) as AuditEventRow[]);
      reply = { id: req.id, moved: true };
    } else reply = { id: req.id, moved: open().commit(unpack(req.packed, HASH_SIZE)) };
  } catch (err) {
    const e = err as { message?: string; code?: string };
    drop();
    reply = {
      id: req.id,
      error: { message: e?.message ?? String(err), ...(e?.code ? { code: e.code } : {}) },
    };
  }
  port.postMessage(reply);
});
