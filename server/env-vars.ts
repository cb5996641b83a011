// Reading one environment variable of a given type: a wrong value is a ConfigError that names
// the variable. Shared by every module that reads its settings from the environment.
import { ConfigError } from './errors.ts';

export type Env = Record<string, string | undefined>;

export function intVar(env: Env, key: string, def: number, min: number, max: number): number {
  const raw = env[key];
  if (raw === undefined || raw === '') return def;
  if (!/^\d+$/.test(raw)) throw new ConfigError(`${key}: expected a whole number, got ${JSON.stringify(raw)}`);
  const n = Number(raw);
  if (n < min || n > max) throw new ConfigError(`${key}: must be between ${min} and ${max}, got ${n}`);
  return n;
}

export function boolVar(env: Env, key: string, def: boolean): boolean {
  const raw = env[key];
  if (raw === undefined || raw === '') return def;
  if (/^(1|true|yes)$/i.test(raw)) return true;
  if (/^(0|false|no)$/i.test(raw)) return false;
  throw new ConfigError(`${key}: expected true or false, got ${JSON.stringify(raw)}`);
}
