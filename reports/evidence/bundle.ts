// Builds one period's evidence bundle: every file of the layout in ./layout.ts, the sha256sum
// manifest, its SSHSIG and raw Ed25519 signatures, and a deterministic tar.gz. Nothing here reads
// a clock or a random source, so the same input always gives the same archive bytes.
import { createHash, createPublicKey, sign } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BUNDLE_FORMAT, PATHS, isSafeBundlePath } from './layout.ts';
import { formatManifest, type ManifestLine } from './manifest.ts';
import { writeDeterministicTarGz, type TarSource } from './deterministic-tar.ts';
import { allowedSignersLine, openSshPublicKeyLine, sshFingerprint, sshsigSign } from './sshsig.ts';
import { renderReadme } from './readme.ts';
import { stableJson } from './stable-json.ts';
import type { BundleInput, EvidenceRecord } from './types.ts';

export class BundleInputError extends Error {
  override name = 'BundleInputError';
}

export interface BuiltBundle {
  bundleId: string;
  archiveSha256: string;
  archiveSize: number;
  manifestSha256: string;
  firstIndex: number;
  endIndex: number;
  recordCount: number;
  /** The parsed bundle.json as written. */
  bundleJson: Record<string, unknown>;
}

const sha256hex = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const b64 = (b: Uint8Array): string => Buffer.from(b).toString('base64');
const NEWLINE = 0x0a;
const FLUSH_AT = 1 << 20;

/** Writes the records as NDJSON to `file`; returns the file's size and SHA-256. */
async function writeEntries(
  entries: BundleInput['audit']['entries'],
  file: string,
  firstIndex: number,
  endIndex: number,
): Promise<{ size: number; sha256: string }> {
  const out = createWriteStream(file);
  const hash = createHash('sha256');
  let size = 0;
  let expect = firstIndex;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const flush = async () => {
    if (pending.length === 0) return;
    const chunk = Buffer.concat(pending, pendingBytes);
    pending = [];
    pendingBytes = 0;
    hash.update(chunk);
    size += chunk.length;
    if (!out.write(chunk)) await once(out, 'drain');
  };
  try {
    for await (const rec of entries as AsyncIterable<EvidenceRecord>) {
      if (rec.index !== expect) {
        throw new BundleInputError(`expected record ${expect}, got ${rec.index}: records must be contiguous`);
      }
      if (expect >= endIndex)
        throw new BundleInputError(`record ${rec.index} is beyond the end index ${endIndex}`);
      // Canonical JSON never holds a raw newline; a record that does would split its NDJSON line.
      if (Buffer.from(rec.data.buffer, rec.data.byteOffset, rec.data.byteLength).includes(NEWLINE)) {
        throw new BundleInputError(
          `record ${rec.index} contains a newline byte and cannot be one NDJSON line`,
        );
      }
      pending.push(
        Buffer.from(rec.data.buffer, rec.data.byteOffset, rec.data.byteLength),
        Buffer.from([NEWLINE]),
      );
      pendingBytes += rec.data.byteLength + 1;
      expect++;
      if (pendingBytes >= FLUSH_AT) await flush();
    }
    if (expect !== endIndex) throw new BundleInputError(`records end at ${expect}, expected ${endIndex}`);
    await flush();
    out.end();
    await once(out, 'finish');
  } catch (err) {
    out.destroy();
    throw err;
  }
  return { size, sha256: hash.digest('hex') };
}

function checkInput(input: BundleInput): void {
  const { start, end } = input.audit;
  if (!Number.isSafeInteger(start.size) || start.size < 0) throw new BundleInputError('bad start size');
  if (!Number.isSafeInteger(end.size) || end.size < start.size) {
    throw new BundleInputError(`end size ${end.size} is below start size ${start.size}`);
  }
  let prev = start.size;
  for (const c of input.audit.within ?? []) {
    if (!(c.size > prev && c.size < end.size)) {
      throw new BundleInputError(
        `intermediate checkpoint sizes must rise strictly inside (${start.size}, ${end.size})`,
      );
    }
    prev = c.size;
  }
  if (!/^[A-Za-z0-9._:-]+$/.test(input.bundleId))
    throw new BundleInputError(`bad bundle id ${input.bundleId}`);
  const from = Date.parse(input.period.from);
  const to = Date.parse(input.period.to);
  if (Number.isNaN(from) || Number.isNaN(to) || from >= to) {
    throw new BundleInputError(`bad period ${input.period.from} .. ${input.period.to}`);
  }
  for (const r of input.reports) {
    for (const f of r.files) {
      if (!isSafeBundlePath(`reports/${f.name}`))
        throw new BundleInputError(`bad report file name ${f.name}`);
    }
    for (const ref of [r.json, r.pdf]) {
      if (ref !== undefined && !r.files.some((f) => f.name === ref)) {
        throw new BundleInputError(`report ${r.name} names ${ref}, which is not among its files`);
      }
    }
  }
}

export async function buildBundle(input: BundleInput, outFile: string): Promise<BuiltBundle> {
  checkInput(input);
  const { audit, signer } = input;
  const firstIndex = audit.start.size;
  const endIndex = audit.end.size;
  const publicKey = createPublicKey(signer.privateKey);
  const fingerprint = sshFingerprint(publicKey);

  const work = await mkdtemp(join(input.workDir ?? tmpdir(), 'auditgate-bundle-'));
  try {
    const entriesFile = join(work, 'entries.ndjson');
    const entries = await writeEntries(audit.entries, entriesFile, firstIndex, endIndex);

    const files = new Map<string, Buffer>();
    const put = (path: string, content: string | Buffer) => {
      if (files.has(path)) throw new BundleInputError(`two files named ${path}`);
      files.set(path, typeof content === 'string' ? Buffer.from(content, 'utf8') : content);
    };

    put(PATHS.checkpointStart, audit.start.note);
    put(PATHS.checkpointEnd, audit.end.note);
    put(
      PATHS.checkpointsWithin,
      (audit.within ?? [])
        .map((c) => `${JSON.stringify({ size: c.size, root: b64(c.root), note: c.note })}\n`)
        .join(''),
    );
    put(
      PATHS.consistencyProof,
      stableJson({
        old_size: firstIndex,
        new_size: endIndex,
        old_root: b64(audit.start.root),
        new_root: b64(audit.end.root),
        proof: audit.consistencyProof.map(b64),
      }),
    );
    put(
      PATHS.compactRange,
      stableJson({
        tree_size: firstIndex,
        root: b64(audit.start.root),
        subtrees: audit.startState.map((s) => ({ level: s.level, index: s.index, hash: b64(s.hash) })),
      }),
    );
    put(PATHS.logVkey, `${audit.vkey}\n`);
    put(PATHS.signerPub, `${openSshPublicKeyLine(publicKey, signer.principal)}\n`);
    put(PATHS.signerPem, publicKey.export({ format: 'pem', type: 'spki' }) as string);
    put(PATHS.allowedSigners, `${allowedSignersLine(signer.principal, signer.namespace, publicKey)}\n`);

    const reportsJson = input.reports.map((r) => {
      for (const f of r.files) put(`reports/${f.name}`, f.content);
      const json = r.json ? r.files.find((f) => f.name === r.json)! : undefined;
      return {
        name: r.name,
        files: r.files.map((f) => `reports/${f.name}`).sort(),
        json: r.json ? `reports/${r.json}` : null,
        pdf: r.pdf ? `reports/${r.pdf}` : null,
        data_sha256: json ? sha256hex(json.content) : null,
        meta: r.meta ?? {},
      };
    });

    const bundleJson = {
      format: BUNDLE_FORMAT,
      bundle_id: input.bundleId,
      period: input.period,
      generator: input.generator,
      job_run: input.jobRun
        ? {
            id: input.jobRun.id,
            job: input.jobRun.job,
            trigger: input.jobRun.trigger,
            scheduled_for: input.jobRun.scheduledFor ?? null,
          }
        : null,
      log: { origin: audit.origin, vkey: audit.vkey },
      audit: {
        records: PATHS.entries,
        first_index: firstIndex,
        end_index: endIndex,
        record_count: endIndex - firstIndex,
        records_sha256: entries.sha256,
        selection: audit.selection ?? null,
        start_checkpoint: { file: PATHS.checkpointStart, size: firstIndex, root: b64(audit.start.root) },
        end_checkpoint: { file: PATHS.checkpointEnd, size: endIndex, root: b64(audit.end.root) },
        checkpoints_within: { file: PATHS.checkpointsWithin, count: audit.within?.length ?? 0 },
        consistency_proof: PATHS.consistencyProof,
        compact_range: PATHS.compactRange,
      },
      reports: reportsJson,
      signer: {
        algorithm: 'ed25519',
        key_id: fingerprint,
        public_key: openSshPublicKeyLine(publicKey),
        namespace: signer.namespace,
        principal: signer.principal,
      },
      previous_bundle: input.previous
        ? {
            archive_sha256: input.previous.archiveSha256,
            bundle_id: input.previous.bundleId,
            end_size: input.previous.endSize,
            end_root: b64(input.previous.endRoot),
          }
        : null,
      storage: input.storage
        ? {
            kind: input.storage.kind,
            key: input.storage.key,
            bucket: input.storage.bucket ?? null,
            object_lock: input.storage.objectLock
              ? { mode: input.storage.objectLock.mode, retain_until: input.storage.objectLock.retainUntil }
              : null,
          }
        : null,
      timestamp: input.timestamper ? { tsa_url: input.timestamper.url, token: PATHS.manifestTsr } : null,
    };
    put(PATHS.bundleJson, stableJson(bundleJson));
    put(
      PATHS.readme,
      renderReadme({
        bundleId: input.bundleId,
        period: input.period,
        origin: audit.origin,
        firstIndex,
        endIndex,
        signerFingerprint: fingerprint,
        namespace: signer.namespace,
        principal: signer.principal,
        reports: reportsJson.flatMap((r) => r.files.map((f) => f.slice('reports/'.length))),
        previousArchiveSha256: input.previous?.archiveSha256 ?? null,
        generator: `${input.generator.name} ${input.generator.version}`,
      }),
    );

    const manifestLines: ManifestLine[] = [...files].map(([path, content]) => ({
      path,
      sha256: sha256hex(content),
    }));
    manifestLines.push({ path: PATHS.entries, sha256: entries.sha256 });
    const manifest = Buffer.from(formatManifest(manifestLines), 'utf8');
    put(PATHS.manifest, manifest);
    put(PATHS.manifestSig, sshsigSign(manifest, signer.privateKey, signer.namespace));
    put(PATHS.manifestSigBin, sign(null, manifest, signer.privateKey));
    if (input.timestamper) put(PATHS.manifestTsr, await input.timestamper.stamp(manifest));

    const sources: TarSource[] = [...files].map(([path, content]) => ({ path, content }));
    sources.push({ path: PATHS.entries, file: entriesFile, size: entries.size });
    // The period's end is the archive's one timestamp: fixed for a period, meaningful to a reader.
    const archive = await writeDeterministicTarGz(sources, outFile, { mtime: new Date(input.period.to) });

    return {
      bundleId: input.bundleId,
      archiveSha256: archive.sha256,
      archiveSize: archive.size,
      manifestSha256: sha256hex(manifest),
      firstIndex,
      endIndex,
      recordCount: endIndex - firstIndex,
      bundleJson,
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
