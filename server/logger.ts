// Structured JSON logs (pino). Credentials must never reach a log line: redact every place a
// token or key could travel, even though callers are expected not to log them.
import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };

export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  'headers.cookie',
  'authorization',
  'token',
  'apiKey',
  'secret',
  '*.authorization',
  '*.token',
  '*.secret',
];

export function createLogger(level = 'info', destination?: DestinationStream): Logger {
  return pino(
    { level, base: { service: 'auditgate' }, redact: { paths: REDACT_PATHS, censor: '[redacted]' } },
    destination,
  );
}
