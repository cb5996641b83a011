// RFC 3161 time-stamps of the manifest against a real TSA: OpenSSL's `ts -reply` behind a small
// HTTP endpoint, with a CA and a timeStamping certificate made for the test. The token in the
// bundle verifies with `openssl ts -verify`, our verifier checks it is for this manifest, and a
// refusing or unreachable TSA stops the build instead of producing an unstamped bundle silently.
import test from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { MemoryLog, evidenceKeys, fillLog, fixtureBundleInput, tempDir } from './helpers/evidence-fixture.ts';
import { buildBundle } from '../reports/evidence/bundle.ts';
import { PATHS } from '../reports/evidence/layout.ts';
import { httpTimestamper, readTimestampReply, timeStampRequest } from '../reports/evidence/rfc3161.ts';
import { verifyBundle } from '../server/evidence/verify.ts';

const TSA_CNF = `[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = test
[ ca_ext ]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign
[ tsa_ext ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = critical,timeStamping
[ tsa ]
default_tsa = tsa_config
[ tsa_config ]
serial = ./serial
crypto_device = builtin
signer_cert = ./tsa.pem
certs = ./ca.pem
signer_key = ./tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
other_policies = 1.2.3.4.2
digests = sha256
accuracy = secs:1
ordering = no
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
`;

function makeTsa(dir: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'tsa.cnf'), TSA_CNF);
  writeFileSync(join(dir, 'serial'), '01\n');
  const run = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  run(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=test-ca', '-config', 'tsa.cnf', '-extensions', 'ca_ext']);
  run(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'tsa.key', '-out', 'tsa.csr', '-subj', '/CN=test-tsa', '-config', 'tsa.cnf']);
  run(['x509', '-req', '-in', 'tsa.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'tsa.pem', '-days', '2', '-extfile', 'tsa.cnf', '-extensions', 'tsa_ext']);
}

/** An HTTP TSA: each POSTed TimeStampReq is answered by `openssl ts -reply`. */
async function startTsa(dir: string, mode: { status?: number } = {}): Promise<{ url: string; server: Server; requests: number }> {
  const state = { url: '', server: undefined as unknown as Server, requests: 0 };
  state.server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      state.requests++;
      if (mode.status) {
        res.writeHead(mode.status).end();
        return;
      }
      if (req.headers['content-type'] !== 'application/timestamp-query') {
        res.writeHead(415).end();
        return;
      }
      const q = join(dir, `q${state.requests}.tsq`);
      const r = join(dir, `r${state.requests}.tsr`);
      writeFileSync(q, Buffer.concat(chunks));
      execFileSync('openssl', ['ts', '-reply', '-config', 'tsa.cnf', '-queryfile', q, '-out', r], { cwd: dir, stdio: 'pipe' });
      res.writeHead(200, { 'content-type': 'application/timestamp-reply' }).end(readFileSync(r));
    });
  });
  await new Promise<void>((ok) => state.server.listen(0, '127.0.0.1', ok));
  const addr = state.server.address() as { port: number };
  state.url = `http://127.0.0.1:${addr.port}/tsa`;
  return state;
}

test('our TimeStampReq is what openssl ts -query makes of it', (t) => {
  const dir = tempDir(t);
  const hash = createHash('sha256').update('m').digest();
  writeFileSync(join(dir, 'q.tsq'), timeStampRequest(hash, Buffer.from('0102030405060708', 'hex')));
  const text = execFileSync('openssl', ['ts', '-query', '-in', join(dir, 'q.tsq'), '-text'], { encoding: 'utf8', stdio: 'pipe' });
  t.regex(text, /Version: 1/);
  t.regex(text, /Hash Algorithm: sha256/);
  t.regex(text, /Nonce: 0x0102030405060708/);
  t.regex(text, /Certificate required: yes/);
  t.true(text.replace(/[^0-9a-f]/g, '').includes(hash.toString('hex').slice(0, 16)));
});

test('a bundle with an RFC 3161 token: openssl ts -verify accepts it, our verifier ties it to the manifest', async (t) => {
  const dir = tempDir(t);
  const tsaDir = join(dir, 'tsa');
  makeTsa(tsaDir);
  const tsa = await startTsa(tsaDir);
  t.teardown(() => tsa.server.close());

  const log = new MemoryLog('auditgate.test/log');
  fillLog(log, 100);
  const keys = evidenceKeys();
  const input = await fixtureBundleInput({ log, keys, from: 10, to: 100, out: '' });
  const out = join(dir, 'b.tar.gz');
  await buildBundle({ ...input, timestamper: httpTimestamper(tsa.url) }, out);
  t.is(tsa.requests, 1);

  const r = await verifyBundle(out, { vkey: log.vkey, signerKey: keys.publicKey });
  t.true(r.ok, JSON.stringify(r.lines.filter((l) => l.status !== 'PASS')));
  const line = r.lines.find((l) => l.check === 'timestamp')!;
  t.is(line.status, 'PASS');
  t.regex(line.detail, /RFC 3161 token of \d{4}-\d{2}-\d{2}T/);

  const x = join(dir, 'x');
  mkdirSync(x);
  execFileSync('tar', ['-xzf', out, '-C', x, '-m']);
  const bj = JSON.parse(readFileSync(join(x, PATHS.bundleJson), 'utf8'));
  t.deepEqual(bj.timestamp, { tsa_url: tsa.url, token: PATHS.manifestTsr });
  const ossl = spawnSync(
    'openssl',
    ['ts', '-verify', '-data', PATHS.manifest, '-in', PATHS.manifestTsr, '-CAfile', join(tsaDir, 'ca.pem'), '-untrusted', join(tsaDir, 'tsa.pem')],
    { cwd: x, encoding: 'utf8' },
  );
  t.is(ossl.status, 0, ossl.stderr);
  t.regex(ossl.stdout, /Verification: OK/);
  t.is(readTimestampReply(readFileSync(join(x, PATHS.manifestTsr))).status, 0);

  // A token from another bundle (another manifest) is refused by both.
  const other = join(dir, 'other.tar.gz');
  await buildBundle({ ...(await fixtureBundleInput({ log, keys, from: 20, to: 100, out: '' })), timestamper: httpTimestamper(tsa.url) }, other);
  const y = join(dir, 'y');
  mkdirSync(y);
  execFileSync('tar', ['-xzf', other, '-C', y, '-m']);
  writeFileSync(join(x, PATHS.manifestTsr), readFileSync(join(y, PATHS.manifestTsr)));
  const bad = await verifyBundle(x, { vkey: log.vkey, signerKey: keys.publicKey });
  t.is(bad.lines.find((l) => l.check === 'timestamp')!.status, 'FAIL');
  t.regex(bad.lines.find((l) => l.check === 'timestamp')!.detail, /another manifest/);
  t.not(
    spawnSync('openssl', ['ts', '-verify', '-data', PATHS.manifest, '-in', PATHS.manifestTsr, '-CAfile', join(tsaDir, 'ca.pem'), '-untrusted', join(tsaDir, 'tsa.pem')], { cwd: x }).status,
    0,
  );
});

test('a TSA that refuses or cannot be reached stops the build', async (t) => {
  const dir = tempDir(t);
  const tsa = await startTsa(dir, { status: 503 });
  t.teardown(() => tsa.server.close());
  const log = new MemoryLog('auditgate.test/log');
  fillLog(log, 20);
  const keys = evidenceKeys();
  const input = await fixtureBundleInput({ log, keys, from: 0, to: 20, out: '' });
  await t.throwsAsync(buildBundle({ ...input, timestamper: httpTimestamper(tsa.url) }, join(dir, 'b.tar.gz')), { message: /answered HTTP 503/ });
  await t.throwsAsync(buildBundle({ ...input, timestamper: httpTimestamper('http://127.0.0.1:9/tsa', { timeoutMs: 2000 }) }, join(dir, 'c.tar.gz')));
  t.throws(() => readTimestampReply(Buffer.from('30053003020102', 'hex')), { message: /PKIStatus 2/ });
});
