// For the knex CLI (`npx knex --knexfile knexfile.ts migrate:status`); the service itself migrates
// at start-up through server/db.ts, which this file reuses so there is one configuration.
import { resolve } from 'node:path';
import { knexConfig } from './server/db.ts';

const dataDir = resolve(process.env.AUDITGATE_DATA_DIR || './data');

export default knexConfig({
  databaseUrl: process.env.DATABASE_URL || undefined,
  sqliteFile: resolve(dataDir, 'auditgate.sqlite'),
});
