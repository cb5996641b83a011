import { loadConfig } from '../config.ts';
import { startService } from '../service.ts';
import type { Command } from './command.ts';

export const command: Command = {
  name: 'serve',
  summary: 'Run the gateway service on HOST:PORT (default 127.0.0.1:8080) with the configuration from the environment.',
  usage: 'auditgate serve',
  async run(_argv, io) {
    const config = loadConfig(io.env, io.cwd);
    let service;
    try {
      service = await startService(config);
    } catch (err) {
      // Start-up failures are operator problems (port taken, database unreachable): one clear line.
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'EADDRINUSE') io.err(`auditgate: cannot listen on ${config.host}:${config.port}: the port is in use (set PORT)`);
      else if (e.code === 'EACCES') io.err(`auditgate: cannot listen on ${config.host}:${config.port}: permission denied`);
      else io.err(`auditgate: cannot start: ${e.message}`);
      return 1;
    }
    for (const line of service.mcp.connectHelp(service.url)) io.out(line);
    await new Promise<void>((resolveStop) => {
      const stop = (signal: string) => {
        service.logger.info({ signal }, 'shutting down');
        service.stop().then(resolveStop, (err) => {
          service.logger.error({ err }, 'shutdown failed');
          resolveStop();
        });
      };
      process.once('SIGINT', () => stop('SIGINT'));
      process.once('SIGTERM', () => stop('SIGTERM'));
    });
    return 0;
  },
};
