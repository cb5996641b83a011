// `auditgate <command>`: a table of subcommands, each loaded only when used so --help stays fast.
import { UsageError, ConfigError } from '../errors.ts';
import type { CliIo, Command } from './command.ts';

const BUG_ERRORS: ErrorConstructor[] = [TypeError, ReferenceError, RangeError, SyntaxError, EvalError];

type Loader = () => Promise<Command>;

// One line per subcommand; modules live beside this file.
const COMMANDS: Record<string, { summary: string; load: Loader }> = {
  serve: { summary: 'run the gateway service (same as npm start)', load: async () => (await import('./serve.ts')).command },
  'report access-review': { summary: 'write the user access review (PDF, JSON, CSV) for a period', load: async () => (await import('./report.ts')).accessReviewCommand },
  'report activity': { summary: 'write the gateway activity and anomaly report for a period', load: async () => (await import('./report.ts')).activityCommand },
  'report changes': { summary: 'write the configuration and policy change log for a period', load: async () => (await import('./report.ts')).changesCommand },
  'log fsck': { summary: 'check the whole audit log in the local database', load: async () => (await import('./log-fsck.ts')).command },
  'keys create': { summary: 'create an API key (printed once)', load: async () => (await import('./keys.ts')).createCommand },
  'keys list': { summary: 'list API keys (no secrets)', load: async () => (await import('./keys.ts')).listCommand },
  'keys revoke': { summary: 'revoke an API key', load: async () => (await import('./keys.ts')).revokeCommand },
  'verify-log': { summary: "check a running log over HTTP as an auditor (signature, consistency, every entry)", load: async () => (await import('./verify-log.ts')).command },
  bundle: { summary: "build, verify, store and log a period's signed evidence bundle", load: async () => (await import('../evidence/cli-bundle.ts')).command },
  'verify-bundle': { summary: 'verify an evidence bundle offline (hashes, signatures, checkpoints, every record, reports, chain)', load: async () => (await import('../evidence/cli-verify-bundle.ts')).command },
};

export function registerCommand(name: string, summary: string, load: Loader): void {
  COMMANDS[name] = { summary, load };
}

function help(io: CliIo): void {
  io.out('Usage: auditgate <command> [options]');
  io.out('');
  io.out('Commands:');
  const width = Math.max(...Object.keys(COMMANDS).map((k) => k.length));
  for (const [name, c] of Object.entries(COMMANDS)) io.out(`  ${name.padEnd(width)}  ${c.summary}`);
  io.out('');
  io.out("Run 'auditgate <command> --help' for a command's options.");
}

export async function main(argv: string[], io?: Partial<CliIo>): Promise<number> {
  const full: CliIo = {
    out: io?.out ?? ((l) => process.stdout.write(`${l}\n`)),
    err: io?.err ?? ((l) => process.stderr.write(`${l}\n`)),
    env: io?.env ?? process.env,
    cwd: io?.cwd ?? process.cwd(),
  };
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    help(full);
    return name ? 0 : 2;
  }
  if (name === '--version' || name === '-v') {
    const { VERSION } = await import('../version.ts');
    full.out(VERSION);
    return 0;
  }
  // `log fsck`, `keys create` …: two-word commands are looked up as "log fsck" first.
  let entry = COMMANDS[name];
  let args = rest;
  if (rest[0] && COMMANDS[`${name} ${rest[0]}`]) {
    entry = COMMANDS[`${name} ${rest[0]}`];
    args = rest.slice(1);
  }
  if (!entry) {
    const group = Object.keys(COMMANDS).filter((k) => k.startsWith(`${name} `));
    if (group.length) {
      full.err(`auditgate ${name}: expected one of: ${group.map((g) => g.split(' ')[1]).join(', ')}`);
    } else {
      full.err(`auditgate: unknown command '${name}'`);
      help({ ...full, out: full.err });
    }
    return 2;
  }
  const cmd = await entry.load();
  if (args.includes('--help') || args.includes('-h')) {
    full.out(`Usage: ${cmd.usage}`);
    full.out('');
    full.out(cmd.summary);
    return 0;
  }
  try {
    return await cmd.run(args, full);
  } catch (err) {
    if (err instanceof UsageError) {
      full.err(`auditgate ${cmd.name}: ${err.message}`);
      full.err(`Usage: ${cmd.usage}`);
      return 2;
    }
    if (err instanceof ConfigError) {
      full.err(`auditgate ${cmd.name}: configuration error: ${err.message}`);
      return 2;
    }
    // Domain errors (a refused period, an unreachable database…) are the operator's to fix: say
    // what is wrong in one line. Built-in errors (TypeError…) are bugs: keep their stack.
    if (err instanceof Error && !BUG_ERRORS.some((B) => err.constructor === B)) {
      full.err(`auditgate ${cmd.name}: ${err.message}`);
      return 1;
    }
    throw err;
  }
}
