// Loaded with `node --import` into the @modelcontextprotocol/conformance process, which has no way to send
// headers of its own, so that it can be run through an authenticating gateway.
//
// AUDITGATE_TEST_HEADERS='{"Authorization":"Bearer …"}' adds those headers to every HTTP request the process
// makes, unless the request already carries a header of that name. The suite sends requests two ways:
//   - global fetch (the SDK client, and the raw POST/GET of the SSE scenarios);
//   - undici's request() (the DNS-rebinding scenario, with forged Host/Origin headers).
// Node's fetch and undici's request() both dispatch through undici's global dispatcher (shared through a
// globalThis symbol), so wrapping that dispatcher covers both; fetch is wrapped as well in case a caller
// passes a dispatcher of its own. Caller-owned header objects are never mutated: the suite copies request
// headers into its result files, and the token must not end up there.
/* global Request, Headers */
import { Dispatcher, getGlobalDispatcher, setGlobalDispatcher } from 'undici';

const raw = process.env.AUDITGATE_TEST_HEADERS;

function parseExtraHeaders(text) {
  const parsed = JSON.parse(text);
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new Error('AUDITGATE_TEST_HEADERS must be a JSON object of header name to string value');
  }
  const entries = Object.entries(parsed);
  for (const [name, value] of entries) {
    if (typeof value !== 'string')
      throw new Error(`AUDITGATE_TEST_HEADERS: value of ${name} is not a string`);
  }
  return entries;
}

function missingExtras(extra, presentNames) {
  const present = new Set(presentNames.map((name) => String(name).toLowerCase()));
  return extra.filter(([name]) => !present.has(name.toLowerCase()));
}

// undici accepts dispatch headers as a plain object, a flat [name, value, …] array, an array of pairs, or
// any iterable of pairs; answer in the shape we were given.
function withExtraHeaders(headers, extra) {
  if (headers === undefined || headers === null) return Object.fromEntries(extra);
  if (Array.isArray(headers)) {
    if (headers.length > 0 && Array.isArray(headers[0])) {
      return [
        ...headers,
        ...missingExtras(
          extra,
          headers.map(([name]) => name),
        ),
      ];
    }
    const names = headers.filter((_, i) => i % 2 === 0);
    return [...headers, ...missingExtras(extra, names).flat()];
  }
  if (typeof headers[Symbol.iterator] === 'function') {
    const pairs = [...headers];
    return [
      ...pairs,
      ...missingExtras(
        extra,
        pairs.map(([name]) => name),
      ),
    ];
  }
  return { ...headers, ...Object.fromEntries(missingExtras(extra, Object.keys(headers))) };
}

class HeaderAddingDispatcher extends Dispatcher {
  #inner;
  #extra;

  constructor(inner, extra) {
    super();
    this.#inner = inner;
    this.#extra = extra;
  }

  dispatch(options, handler) {
    return this.#inner.dispatch(
      { ...options, headers: withExtraHeaders(options.headers, this.#extra) },
      handler,
    );
  }

  close(...args) {
    return this.#inner.close(...args);
  }

  destroy(...args) {
    return this.#inner.destroy(...args);
  }
}

if (raw !== undefined && raw !== '') {
  const extra = parseExtraHeaders(raw);

  setGlobalDispatcher(new HeaderAddingDispatcher(getGlobalDispatcher(), extra));

  const originalFetch = globalThis.fetch;
  globalThis.fetch = function fetchWithExtraHeaders(input, init) {
    const base = init?.headers ?? (input instanceof Request ? input.headers : undefined);
    const headers = new Headers(base);
    for (const [name, value] of extra) {
      if (!headers.has(name)) headers.set(name, value);
    }
    return originalFetch(input, { ...init, headers });
  };
}
