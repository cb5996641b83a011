import { loadConfig } from '../config.ts';
import { startService } from '../service.ts';
import type { Command } from './command.ts';

export const command: Command = {
  name: 'serve',
  summary: 'Run the gateway service on HOST:PORT (default 127.0.0.1:8080) with the configuration from the environment.',
  usage: 'auditgate serve',
  async run(_argv, io) {
    const config = loadConfig(io.env, io.cwd);
    const service = await startService(config);
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
