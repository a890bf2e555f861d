/*
 * A man in the middle for the agent's tests: forwards to the real server and can lie on its behalf.
 *
 * The real server never offers a tampered module, a manifest changed after signing, or a patch for
 * another build id — the agent must refuse them all the same, should a compromised or buggy server (or
 * the network) deliver one. This proxy sits between agent and server and rewrites check-in answers
 * (`rewriteCheckin`), replaces module bytes (`rewriteModule`), streams modules slowly (`slowModule`,
 * so a test can kill the agent mid-download), and can go down and come back on the same port
 * (`down()` / `up()`). A rewritten answer no longer matches the server's signature over it; with
 * `resignWith` (the server's private key) the proxy signs it again — a compromised server that holds
 * the key — so that the agent's checks behind the answer signature are exercised too. Every answer
 * that passed is kept in `answers` (for replays). Test support only.
 */

import { type KeyObject, sign } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { checkinSignedBytes } from '../../manifest/answer-signature.js';
import { ANSWER_FIELDS_HEADER, type CheckinResponse } from '../../manifest/protocol.js';

export interface ProxyHooks {
  rewriteCheckin?: (r: CheckinResponse) => CheckinResponse;
  rewriteModule?: (bytes: Buffer) => Buffer;
  /** stream module bodies in chunks of `chunk` bytes, `delayMs` apart */
  slowModule?: { chunk: number; delayMs: number };
  /** sign a rewritten answer again with this key (the server's, or an impostor's) */
  resignWith?: KeyObject;
}

/** Sign an answer (plain JSON value) as the server does, alone (a batch's proof is dropped). */
export function resign(answer: CheckinResponse, key: KeyObject): CheckinResponse {
  const { proof: _batched, ...alone } = answer;
  const raw = alone as unknown as Record<string, unknown>;
  return { ...alone, signature: sign(null, checkinSignedBytes(raw), key).toString('base64') };
}

export class TamperProxy {
  hooks: ProxyHooks = {};
  private server: Server | undefined;
  port = 0;
  /** requests seen, by path */
  readonly seen: string[] = [];
  /** check-in answers as the server sent them, oldest first */
  readonly answers: CheckinResponse[] = [];

  constructor(readonly upstream: string) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async up(): Promise<void> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((e) => {
        res.writeHead(502, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { code: 'PROXY', message: String(e) } }));
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  async down(): Promise<void> {
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = req.url ?? '/';
    this.seen.push(path);
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const headers: Record<string, string> = {};
    // end-to-end headers, forwarded as any proxy does
    for (const h of ['authorization', 'content-type', ANSWER_FIELDS_HEADER]) {
      const v = req.headers[h];
      if (typeof v === 'string') headers[h] = v;
    }
    const up = await fetch(`${this.upstream}${path}`, {
      method: req.method ?? 'GET',
      headers,
      body: chunks.length ? Buffer.concat(chunks) : undefined,
    });
    let body: Buffer = Buffer.from(await up.arrayBuffer());
    const type = up.headers.get('content-type') ?? 'application/octet-stream';
    if (up.ok && path === '/v1/checkin') {
      const original = JSON.parse(body.toString()) as CheckinResponse;
      this.answers.push(original);
      if (this.hooks.rewriteCheckin) {
        let answer = this.hooks.rewriteCheckin(structuredClone(original));
        if (this.hooks.resignWith) answer = resign(answer, this.hooks.resignWith);
        body = Buffer.from(JSON.stringify(answer));
      }
    }
    const isModule = /^\/v1\/patches\/[0-9a-f]+\/module$/.test(path);
    if (up.ok && isModule && this.hooks.rewriteModule) body = this.hooks.rewriteModule(body);
    res.writeHead(up.status, { 'content-type': type, 'content-length': String(body.length) });
    const slow = isModule && up.ok ? this.hooks.slowModule : undefined;
    if (!slow) {
      res.end(body);
      return;
    }
    for (let off = 0; off < body.length; off += slow.chunk) {
      if (res.destroyed) return;
      res.write(body.subarray(off, off + slow.chunk));
      await new Promise((r) => setTimeout(r, slow.delayMs));
    }
    res.end();
  }
}
