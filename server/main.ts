// `npm start`: the service with its embedded defaults (SQLite and keys under ./data).
import { main } from './cli/main.ts';

process.exitCode = await main(['serve', ...process.argv.slice(2)]);
