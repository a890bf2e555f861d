/*
 * The server's signing key: where it lives, what it signs, and how it is rotated.
 *
 * Custody. By default the ed25519 private key is kept in the database (`settings.signing_key_pem`), so
 * every instance on one PostgreSQL signs alike; the database files are 0600 in a 0700 directory
 * (data-dir.ts). With `--signing-key FILE` it lives in that file instead (PKCS#8 PEM, created 0600 when
 * missing — taking over a key found in the database, which is then deleted from it); a file that its
 * group or others may read is refused at start (SERVER-KEY-PERMISSIONS, with the chmod in the hint).
 *
 * What is signed: every manifest offered (signed again with the current key when the offer lists are
 * built, so a rotation needs no re-publishing) and every check-in answer as a whole (answer-signature.ts).
 *
 * Rotation (`suture key rotate`, POST /admin/v1/key/rotate, audited): a new key is made and announced
 * under the old one (key-rotation.ts); the announcement chain is kept in `settings.signing_key_chain`
 * and sent with every answer, so agents move their trust to the new key. In the database, key, chain
 * and audit entry are written in one transaction; with a key file, the new key is written to FILE.next,
 * the chain committed, then FILE.next renamed over FILE (a start that finds FILE.next finishes or drops
 * the rotation by what the chain says). Other instances notice a new chain within two seconds.
 */

import type { KeyObject } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { z } from 'zod';
import { SutureError } from '../diagnostic.js';
import type { AnswerProof } from '../manifest/answer-batch.js';
import { checkinPartsBytes, signCheckinParts } from '../manifest/answer-signature.js';
import { announceKey } from '../manifest/key-rotation.js';
import { canonicalObject, type Manifest } from '../manifest/manifest.js';
import { type KeyAnnouncement, keyAnnouncementSchema } from '../manifest/protocol.js';
import {
  generateSigningKey,
  keyFingerprint,
  privateKeyFromPem,
  privateKeyToPem,
  publicKeyToBase64,
  type SigningKeyPair,
  signManifest,
} from '../manifest/signature.js';
import { AnswerBatcher } from './answer-batcher.js';
import type { AuditEntry, Store } from './store.js';

const PEM = 'signing_key_pem';
const CHAIN = 'signing_key_chain';
const REFRESH_MS = 2000;

/** Read a key file, refusing one that others may read. */
export function readKeyFile(file: string): SigningKeyPair {
  const mode = statSync(file).mode & 0o777;
  if (mode & 0o077) {
    throw new SutureError({
      code: 'SERVER-KEY-PERMISSIONS',
      message: `the signing key ${file} is readable by its group or by others (mode ${mode.toString(8).padStart(4, '0')})`,
      location: { file },
      why: 'whoever reads the key can sign livepatches that every machine of the fleet loads',
      hint: `chmod 600 ${file} (and check who could have read it; if in doubt, \`suture key rotate\`)`,
    });
  }
  return privateKeyFromPem(readFileSync(file, 'utf8'));
}

function writeKeyFile(file: string, key: KeyObject): void {
  writeFileSync(file, privateKeyToPem(key), { mode: 0o600, flag: 'wx' });
  chmodSync(file, 0o600);
}

function parseChain(text: string | undefined): KeyAnnouncement[] {
  if (!text) return [];
  return z.array(keyAnnouncementSchema).parse(JSON.parse(text));
}

export class ServerSigner {
  private memo = new Map<string, string>();
  private checkedAt = Date.now();
  private readonly batcher = new AnswerBatcher(() => ({
    privateKey: this.pair.privateKey,
    keysJson: this.keysJson,
  }));

  private constructor(
    private readonly store: Store,
    private readonly keyFile: string | undefined,
    private pair: SigningKeyPair,
    private chain: KeyAnnouncement[],
    private chainText: string,
  ) {}

  /** Open (or create) the key where it lives; `keyFile` set = outside the database. */
  static async open(store: Store, keyFile?: string): Promise<ServerSigner> {
    const chainText = (await store.getSetting(CHAIN)) ?? '[]';
    const chain = parseChain(chainText);
    let pair: SigningKeyPair;
    if (keyFile) {
      const next = `${keyFile}.next`;
      if (existsSync(next)) {
        const pending = readKeyFile(next);
        if (chain.at(-1)?.publicKey === publicKeyToBase64(pending.publicKey)) renameSync(next, keyFile);
        else rmSync(next);
      }
      if (!existsSync(keyFile)) {
        const inDb = await store.getSetting(PEM);
        writeKeyFile(keyFile, inDb ? privateKeyFromPem(inDb).privateKey : generateSigningKey().privateKey);
        if (inDb) await store.setSettings({ [PEM]: undefined });
      }
      pair = readKeyFile(keyFile);
    } else {
      pair = privateKeyFromPem(
        await store.setSettingIfAbsent(PEM, privateKeyToPem(generateSigningKey().privateKey)),
      );
    }
    const last = chain.at(-1)?.publicKey;
    if (last && last !== publicKeyToBase64(pair.publicKey)) {
      throw new SutureError({
        code: 'SERVER-KEY-MISMATCH',
        message: `the signing key (${keyFingerprint(pair.publicKey)}) is not the server's current key (${keyFingerprint(last)}, announced ${chain.at(-1)?.at})`,
        why: 'agents trust the announced key; answers signed with another one would all be refused',
        hint: keyFile
          ? `restore the current key into ${keyFile} (every instance needs the same file)`
          : 'restore the database from a consistent backup',
      });
    }
    return new ServerSigner(store, keyFile, pair, chain, chainText);
  }

  get publicKey(): string {
    return publicKeyToBase64(this.pair.publicKey);
  }

  get keyPair(): SigningKeyPair {
    return this.pair;
  }

  /** the rotation announcements, oldest first, as JSON text for the answer (the last 64: the wire's cap) */
  get keysJson(): string {
    return this.chain.length > 64 ? JSON.stringify(this.chain.slice(-64)) : this.chainText;
  }

  get rotations(): number {
    return this.chain.length;
  }

  get custody(): string {
    return this.keyFile ?? 'the database';
  }

  /** Pick up a rotation made by another instance (looked at every two seconds); true when it did. */
  async refresh(): Promise<boolean> {
    if (Date.now() - this.checkedAt < REFRESH_MS) return false;
    this.checkedAt = Date.now();
    const text = (await this.store.getSetting(CHAIN)) ?? '[]';
    if (text === this.chainText) return false;
    const pem = this.keyFile ? undefined : await this.store.getSetting(PEM);
    this.pair = this.keyFile ? readKeyFile(this.keyFile) : privateKeyFromPem(pem as string);
    this.chain = parseChain(text);
    this.chainText = text;
    this.memo.clear();
    return true;
  }

  /** The manifest's signature by the current key (memoised per patch). */
  signManifest(manifest: Manifest, patchId?: string): string {
    if (!patchId) return signManifest(manifest, this.pair.privateKey);
    let s = this.memo.get(patchId);
    if (!s) {
      if (this.memo.size > 10_000) this.memo.clear();
      s = signManifest(manifest, this.pair.privateKey);
      this.memo.set(patchId, s);
    }
    return s;
  }

  /** The answer signed alone, and the rotation chain (JSON text) that leads to the key that signed it. */
  signAnswer(parts: Record<string, string>): { text: string; signature: string; keysJson: string } {
    return { ...signCheckinParts(parts, this.pair.privateKey), keysJson: this.keysJson };
  }

  /** The answer signed with the others of its turn: one signature over their tree, a proof each. */
  async signAnswerInBatch(
    parts: Record<string, string>,
  ): Promise<{ text: string; signature: string; proof: AnswerProof; keysJson: string }> {
    const text = canonicalObject(parts);
    return { text, ...(await this.batcher.sign(checkinPartsBytes(text))) };
  }

  /** Make a new key, announce it under the current one, and switch to it. */
  async rotate(audit: (detail: Record<string, unknown>) => AuditEntry): Promise<KeyAnnouncement> {
    const next = generateSigningKey();
    const ann = announceKey(next.publicKey, this.pair, new Date().toISOString());
    const chain = [...this.chain, ann];
    const chainText = JSON.stringify(chain);
    const entry = audit({
      previous: keyFingerprint(ann.previous),
      next: keyFingerprint(ann.publicKey),
      custody: this.custody,
    });
    if (this.keyFile) {
      const pending = `${this.keyFile}.next`;
      rmSync(pending, { force: true });
      writeKeyFile(pending, next.privateKey);
      await this.store.setSettings({ [CHAIN]: chainText }, entry);
      renameSync(pending, this.keyFile);
    } else {
      await this.store.setSettings({ [PEM]: privateKeyToPem(next.privateKey), [CHAIN]: chainText }, entry);
    }
    this.pair = next;
    this.chain = chain;
    this.chainText = chainText;
    this.memo.clear();
    return ann;
  }
}
