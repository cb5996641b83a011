// JSON-RPC 2.0 messages as the gateway sees them: parsed once, classified, ids kept exactly as
// sent (1 and "1" are different ids), and each element of a batch handled on its own.
import type { MessageKind } from './audit-record.ts';
import { scanJsonText, type JsonTextProblem } from './json-text.ts';

export type JsonRpcId = string | number | null;

export interface Classified {
  kind: MessageKind;
  /** The message as parsed from the wire. */
  message: Record<string, unknown>;
  id?: JsonRpcId;
  method?: string;
  /** Tool name, resource URI or prompt name, for the methods that carry one. */
  name?: string;
  /** `params._meta.progressToken` of a request, used to route progress notifications back. */
  progressToken?: string | number;
  /**
   * The text the message came in (the whole body, for a batch), when it holds an integer that
   * `message` can only hold rounded: its record keeps this text too (detail.exact_text).
   */
  exactText?: string;
}

/**
 * Why a body could not be accepted as JSON-RPC; the code is the JSON-RPC error code to answer with,
 * the rule names the check in the refusal's record.
 */
export class JsonRpcFormatError extends Error {
  override name = 'JsonRpcFormatError';
  constructor(
    message: string,
    readonly code: number,
    readonly rule: 'parse' | 'utf-8' | JsonTextProblem['rule'] = 'parse',
  ) {
    super(message);
  }
}

export const PARSE_ERROR = -32700;
export const INVALID_REQUEST = -32600;
export const METHOD_NOT_FOUND = -32601;
export const INTERNAL_ERROR = -32603;

/** Methods whose params carry a name/URI that identifies what is being used. */
const NAME_PARAM: Record<string, 'name' | 'uri'> = {
  'tools/call': 'name',
  'prompts/get': 'name',
  'resources/read': 'uri',
  'resources/subscribe': 'uri',
  'resources/unsubscribe': 'uri',
};

export function nameParamOf(method: string): 'name' | 'uri' | undefined {
  return NAME_PARAM[method];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isId(v: unknown): v is JsonRpcId {
  return typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v)) || v === null;
}

/** Classifies one parsed value; throws JsonRpcFormatError when it is not a JSON-RPC 2.0 message. */
export function classify(value: unknown): Classified {
  if (!isObject(value)) throw new JsonRpcFormatError('a JSON-RPC message must be an object', INVALID_REQUEST);
  if (value.jsonrpc !== '2.0') throw new JsonRpcFormatError('"jsonrpc" must be "2.0"', INVALID_REQUEST);
  const hasId = 'id' in value;
  if (hasId && !isId(value.id)) throw new JsonRpcFormatError('"id" must be a string, number or null', INVALID_REQUEST);
  if ('method' in value) {
    if (typeof value.method !== 'string' || value.method === '') {
      throw new JsonRpcFormatError('"method" must be a non-empty string', INVALID_REQUEST);
    }
    if ('params' in value && value.params !== undefined && typeof value.params !== 'object') {
      throw new JsonRpcFormatError('"params" must be an object or array', INVALID_REQUEST);
    }
    const out: Classified = {
      kind: hasId ? 'request' : 'notification',
      message: value,
      method: value.method,
    };
    if (hasId) out.id = value.id as JsonRpcId;
    const params = isObject(value.params) ? value.params : undefined;
    const key = NAME_PARAM[value.method];
    if (key && params && typeof params[key] === 'string') out.name = params[key];
    const meta = params && isObject(params._meta) ? params._meta : undefined;
    const token = meta?.progressToken;
    if (typeof token === 'string' || typeof token === 'number') out.progressToken = token;
    if (!hasId && value.method === 'notifications/progress' && params) {
      const t = params.progressToken;
      if (typeof t === 'string' || typeof t === 'number') out.progressToken = t;
    }
    return out;
  }
  if (!hasId) throw new JsonRpcFormatError('a message needs "method" or "id"', INVALID_REQUEST);
  if ('error' in value) {
    if (!isObject(value.error)) throw new JsonRpcFormatError('"error" must be an object', INVALID_REQUEST);
    return { kind: 'error', message: value, id: value.id as JsonRpcId };
  }
  if ('result' in value) return { kind: 'response', message: value, id: value.id as JsonRpcId };
  throw new JsonRpcFormatError('a response needs "result" or "error"', INVALID_REQUEST);
}

export interface ParsedBody {
  batch: boolean;
  messages: Classified[];
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/** Decodes strictly: invalid UTF-8 is refused, never replaced with U+FFFD. */
export function decodeUtf8(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new JsonRpcFormatError('body is not valid UTF-8', PARSE_ERROR, 'utf-8');
  }
}

/** Parses a POST body (one message or, for 2025-03-26 clients, a batch array). */
export function parseBody(bytes: Uint8Array): ParsedBody {
  const text = decodeUtf8(bytes);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new JsonRpcFormatError(`malformed JSON: ${(err as Error).message}`, PARSE_ERROR);
  }
  const exact = checkText(text);
  if (Array.isArray(value)) {
    if (value.length === 0) throw new JsonRpcFormatError('empty batch', INVALID_REQUEST);
    return { batch: true, messages: value.map((v) => classifyText(v, exact)) };
  }
  return { batch: false, messages: [classifyText(value, exact)] };
}

/** Parses one line or SSE data field from an upstream (one message or a batch). */
export function parseUpstream(text: string): ParsedBody {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new JsonRpcFormatError(`malformed JSON from upstream: ${(err as Error).message}`, PARSE_ERROR);
  }
  const exact = checkText(text);
  if (Array.isArray(value)) return { batch: true, messages: value.map((v) => classifyText(v, exact)) };
  return { batch: false, messages: [classifyText(value, exact)] };
}

/**
 * Refuses JSON that parsed but that a record cannot hold faithfully (json-text.ts); returns the
 * text when the record must keep it besides the parsed message.
 */
function checkText(text: string): string | undefined {
  const scan = scanJsonText(text);
  if (scan.problem) throw new JsonRpcFormatError(scan.problem.message, INVALID_REQUEST, scan.problem.rule);
  return scan.inexactInteger === undefined ? undefined : text;
}

function classifyText(value: unknown, exactText: string | undefined): Classified {
  const c = classify(value);
  if (exactText !== undefined) c.exactText = exactText;
  return c;
}

/** True for JSON that parsed but is recorded as text instead: ambiguous, out of range or too deep. */
export function isUnrecordableJson(err: unknown): err is JsonRpcFormatError {
  return err instanceof JsonRpcFormatError && (err.rule === 'depth' || err.rule === 'duplicate-key' || err.rule === 'number');
}

/**
 * The line a stdio upstream gets for one message: the text it came in when that text is needed
 * to keep an integer beyond 2^53 exact (its line breaks, JSON whitespace only, made spaces), else
 * the parsed message serialised. A batch element's text is the whole batch: serialised.
 */
export function stdioLine(m: Classified): string {
  const text = m.exactText;
  if (text !== undefined && text.trimStart().startsWith('{')) return text.replace(/[\r\n]/g, ' ');
  return JSON.stringify(m.message);
}

/** A key for maps of ids: keeps 1 and "1" apart. */
export function idKey(id: JsonRpcId | undefined): string {
  if (typeof id === 'number') return `n:${id}`;
  if (typeof id === 'string') return `s:${id}`;
  return 'null';
}

export function errorMessage(id: JsonRpcId | undefined, code: number, message: string, data?: unknown): Record<string, unknown> {
  const error: Record<string, unknown> = { code, message };
  if (data !== undefined) error.data = data;
  return { jsonrpc: '2.0', id: id ?? null, error };
}
