// Typed errors shared by the composition root. Each maps to one HTTP status at the edge (server/app.ts).

/** Configuration is wrong; the message names the key and what is wrong. Fatal at start-up. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** A CLI invocation is wrong (unknown flag, missing argument): print usage, exit 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}
