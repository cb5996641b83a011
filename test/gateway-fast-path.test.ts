// The listener-level fast path for /mcp/{target}: which URLs it takes from hapi, and that it takes
// only those (everything else, including malformed MCP paths, is left to hapi's router).
import test from 'ava';
import { targetOf } from '../gateway/hapi.ts';

test('targetOf takes exactly one path segment under the prefix, percent-decoded', (t) => {
  t.is(targetOf('/mcp/everything', '/mcp'), 'everything');
  t.is(targetOf('/mcp/everything?x=1', '/mcp'), 'everything');
  t.is(targetOf('/mcp/my%20target', '/mcp'), 'my target');
  t.is(
    targetOf('/mcp/a%2Fb', '/mcp'),
    'a/b',
    'an encoded slash is part of the name (no such target: the gateway answers 404)',
  );
  for (const url of [
    '/mcp',
    '/mcp/',
    '/mcp/a/b',
    '/mcp/a/',
    '/mcpx/a',
    '/healthz',
    '/log/checkpoint',
    '/mcp/%E0%A4%A',
    undefined,
  ]) {
    t.is(targetOf(url, '/mcp'), undefined, String(url));
  }
  t.is(targetOf('/gw/x', '/gw'), 'x');
});
