// CLI commands that change configuration record the change in the same audit log the service
// writes: the log is safe to open from several processes (compare-and-set on the tree state).
import type { Config } from '../config.ts';
import type { Db } from '../db.ts';
import { loadOrCreateLogKey } from '../audit/log-key.ts';
import { openKnexLog, type KnexLog } from '../audit/knex-log.ts';

export async function openCliLog(config: Config, db: Db): Promise<KnexLog> {
  const signer = await loadOrCreateLogKey(config.log.keyFile, config.log.origin);
  return openKnexLog(db, {
    origin: config.log.origin,
    signer,
    batchMaxSize: 1,
    batchMaxDelayMs: 0,
    checkpointIntervalMs: config.log.checkpointIntervalMs,
    // A short-lived process: the service's timer signs checkpoints; we must not hold the exit.
    checkpointTimer: false,
    // One or two appends: starting a writer thread would cost more than it saves.
    sqliteWriterThread: false,
  });
}
