// @modelcontextprotocol/conformance 0.1.13 server scenarios against the conformance fixture
// directly, through the gateway to the fixture over HTTP, and through the gateway to the fixture
// over stdio: the results must be identical, scenario by scenario.
import test from 'ava';
import { diffConformance, fixtureStdioCommand, runConformance, startFixture } from './helpers/conformance.ts';
import { mcpRecords, startGatewayService } from './helpers/gateway-service.ts';

test('conformance results through the gateway (HTTP and stdio targets) equal the direct run, scenario by scenario', async (t) => {
  t.timeout(600_000);
  const fixture = await startFixture('http');
  const gw = await startGatewayService({
    targets: {
      'fixture-http': { url: fixture.url },
      'fixture-stdio': fixtureStdioCommand(),
    },
  });
  t.teardown(async () => {
    await gw.cleanup();
    await fixture.close();
  });
  const headers = { Authorization: `Bearer ${gw.key}` };
  const [direct, viaHttp, viaStdio] = await Promise.all([
    runConformance(fixture.url),
    runConformance(gw.endpoint('fixture-http'), { headers, timeoutMs: 300_000 }),
    runConformance(gw.endpoint('fixture-stdio'), { headers, timeoutMs: 300_000 }),
  ]);
  t.true(direct.size >= 20, `the suite ran (${direct.size} scenarios)`);
  const passedDirect = [...direct.values()].filter((r) => r.passed).length;
  t.true(passedDirect >= direct.size - 2, 'the fixture itself passes the suite');
  t.deepEqual(diffConformance(direct, viaHttp), [], 'HTTP target');
  t.deepEqual(diffConformance(direct, viaStdio), [], 'stdio target');

  // The suite's traffic is in the log, attributed to the key it used.
  const recs = mcpRecords(await gw.records());
  for (const target of ['fixture-http', 'fixture-stdio']) {
    const msgs = recs.filter((r) => r.event === 'mcp.message' && r.mcp?.target === target);
    t.true(msgs.length > 100, `${target}: ${msgs.length} messages recorded`);
    t.true(msgs.every((r) => r.actor?.subject === 'agent-a'));
  }
});
