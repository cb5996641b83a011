// The log's SQLite writer thread. better-sqlite3 blocks the thread that calls it for the whole
// commit, fsync included; when commits are slow (a slow disk) or must wait for another
// connection's lock, that would stall the event loop and every request in flight, so log-writer.ts
// sends them here, where the commit waits on its own thread while the event loop goes on.
// The thread owns one connection to the database file (sqlite-log-connection.ts).
import { parentPort, workerData } from 'node:worker_threads';
import { HASH_SIZE } from './merkle.ts';
import { SqliteLogConnection } from './sqlite-log-connection.ts';
import type { AuditEventRow } from './audit-events.ts';
import { unpack, type WriterReply, type WriterRequest } from './sqlite-packed.ts';

const { file } = workerData as { file: string };
const port = parentPort!;
const conn = new SqliteLogConnection(file);

// Ready: open now (a failure is retried with the first batch, which then reports it).
try {
  conn.runner();
} catch {
  conn.drop();
}
port.postMessage({ id: 0, moved: true } satisfies WriterReply);

port.on('message', (req: WriterRequest) => {
  if ('close' in req) {
    conn.drop();
    port.postMessage({ id: req.id, moved: false } satisfies WriterReply);
    return;
  }
  let reply: WriterReply;
  try {
    if ('index' in req) {
      conn.runner().index(JSON.parse(req.index) as AuditEventRow[]);
      reply = { id: req.id, moved: true };
    } else reply = { id: req.id, moved: conn.runner().commit(unpack(req.packed, HASH_SIZE)) };
  } catch (err) {
    const e = err as { message?: string; code?: string };
    conn.drop();
    reply = {
      id: req.id,
      error: { message: e?.message ?? String(err), ...(e?.code ? { code: e.code } : {}) },
    };
  }
  port.postMessage(reply);
});
