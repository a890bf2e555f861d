/*
 * The agent's side of the wire: enroll, check in, report, download a module.
 *
 * Every request and response goes through the zod schemas of `manifest/protocol.ts` (shared with the
 * server), so an answer the agent does not understand is an error naming the field, never a guess.
 * Failures are SutureErrors whose message says why in plain words — that sentence is what
 * `suture agent status` prints after "server check-in: failed:":
 *   - AGENT-SERVER-UNREACHABLE: connection refused, DNS, timeout (the server is down or unreachable);
 *   - AGENT-SERVER-TLS: the server's certificate does not verify (with the way to trust its CA);
 *   - AGENT-SERVER-REFUSED: the server answered 4xx/5xx (its error code and message are kept);
 *   - AGENT-SERVER-PROTOCOL: the server answered something that does not match the protocol.
 */

import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import type { z } from 'zod';
import { SutureError } from '../diagnostic.js';
import {
  AGENT_ANSWER_FIELDS,
  ANSWER_FIELDS_HEADER,
  type CheckinRequest,
  type CheckinResponse,
  checkinResponseSchema,
  type EnrollRequest,
  type EnrollResponse,
  enrollResponseSchema,
  errorResponseSchema,
  machineApi,
  type OfferedPatch,
  type ReportRequest,
  reportResponseSchema,
} from '../manifest/protocol.js';
import { describeTransportFailure } from '../manifest/transport.js';

/** Largest module the agent accepts, whatever the server says (a livepatch is kilobytes). */
export const MAX_MODULE_BYTES = 64 * 1024 * 1024;
const REQUEST_TIMEOUT_MS = 30_000;

/** The server answered with an HTTP error: `status` tells a permanent refusal (4xx) from a transient one. */
export class ServerRefusedError extends SutureError {
  constructor(
    readonly status: number,
    message: string,
    hint?: string,
  ) {
    super({ code: 'AGENT-SERVER-REFUSED', message, ...(hint ? { hint } : {}) });
  }
  /** a client error that sending the same request again cannot fix */
  get permanent(): boolean {
    return this.status >= 400 && this.status < 500 && this.status !== 408 && this.status !== 429;
  }
}

export class ServerClient {
  readonly base: string;
  constructor(
    server: string,
    private readonly credential?: string,
  ) {
    this.base = server.replace(/\/+$/, '');
  }

  private async request(
    method: 'GET' | 'POST',
    path: string,
    body?: unknown,
    extra: Record<string, string> = {},
  ): Promise<Response> {
    const url = `${this.base}${path}`;
    const headers: Record<string, string> = { ...extra };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.credential) headers.authorization = `Bearer ${this.credential}`;
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    } catch (e) {
      const f = describeTransportFailure(e);
      throw new SutureError({
        code: f.tls ? 'AGENT-SERVER-TLS' : 'AGENT-SERVER-UNREACHABLE',
        message: `cannot reach ${this.base}: ${f.message}`,
        hint:
          f.tls?.hint ??
          'the agent keeps its applied patches and retries with back-off; check the server and the network',
      });
    }
    if (!res.ok) {
      const text = await res.text().catch(() => '');
      let code = `HTTP ${res.status}`;
      let message = text.slice(0, 200) || res.statusText;
      let hint: string | undefined;
      try {
        const parsed = errorResponseSchema.safeParse(JSON.parse(text));
        if (parsed.success) {
          code = parsed.data.error.code;
          message = parsed.data.error.message;
          hint = parsed.data.error.hint;
        }
      } catch {
        // not JSON: keep the raw text
      }
      throw new ServerRefusedError(res.status, `${method} ${path}: ${res.status} ${code}: ${message}`, hint);
    }
    return res;
  }

  private async json<T>(res: Response, schema: z.ZodType<T>, what: string): Promise<T> {
    return (await this.jsonWithRaw(res, schema, what)).parsed;
  }

  private async jsonWithRaw<T>(
    res: Response,
    schema: z.ZodType<T>,
    what: string,
  ): Promise<{ parsed: T; raw: unknown }> {
    let value: unknown;
    try {
      value = await res.json();
    } catch (e) {
      throw new SutureError({
        code: 'AGENT-SERVER-PROTOCOL',
        message: `${what}: the server's answer is not JSON (${(e as Error).message})`,
      });
    }
    const r = schema.safeParse(value);
    if (!r.success) {
      throw new SutureError({
        code: 'AGENT-SERVER-PROTOCOL',
        message: `${what}: the server's answer does not match the protocol`,
        detail: r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`),
        hint: 'agent and server versions may differ',
      });
    }
    return { parsed: r.data, raw: value };
  }

  async enroll(req: EnrollRequest): Promise<EnrollResponse> {
    const res = await this.request('POST', machineApi.enroll, req);
    return this.json(res, enrollResponseSchema, 'enroll');
  }

  /** The answer parsed, and as received (plain JSON): its signature is checked on the latter (answer.ts). */
  async checkin(req: CheckinRequest): Promise<{ answer: CheckinResponse; raw: Record<string, unknown> }> {
    // this agent understands kernelSupport/patchedKernels and batch proofs: the server adds them when asked
    const res = await this.request('POST', machineApi.checkin, req, {
      [ANSWER_FIELDS_HEADER]: AGENT_ANSWER_FIELDS,
    });
    const { parsed, raw } = await this.jsonWithRaw(res, checkinResponseSchema, 'check-in');
    return { answer: parsed, raw: raw as Record<string, unknown> };
  }

  async report(req: ReportRequest): Promise<void> {
    const res = await this.request('POST', machineApi.report, req);
    await this.json(res, reportResponseSchema, 'report');
  }

  /**
   * Download an offered module to `dest`: streamed to `dest.part` while hashing, size-capped, fsync'ed,
   * renamed into place only when its sha256 equals the offer's. A kill mid-download leaves at most a
   * `.part` file, which the next attempt overwrites.
   */
  async download(offer: OfferedPatch, dest: string): Promise<void> {
    const res = await this.request('GET', offer.url);
    const limit = Math.min(offer.size, MAX_MODULE_BYTES);
    const part = `${dest}.part`;
    const hash = createHash('sha256');
    const fd = openSync(part, 'w', 0o600);
    let total = 0;
    try {
      if (!res.body) throw new Error('empty body');
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        total += chunk.length;
        if (total > limit) {
          throw new SutureError({
            code: 'AGENT-MODULE-TOO-LARGE',
            message: `module of patch ${offer.manifest.name} is larger than announced (${offer.size} bytes)`,
            hint: 'the server or something between it and this machine is sending other bytes; nothing was loaded',
          });
        }
        hash.update(chunk);
        let off = 0;
        while (off < chunk.length) off += writeSync(fd, chunk, off, chunk.length - off);
      }
      fsyncSync(fd);
    } catch (e) {
      closeSync(fd);
      rmSync(part, { force: true });
      if (e instanceof SutureError) throw e;
      throw new SutureError({
        code: 'AGENT-SERVER-UNREACHABLE',
        message: `download of ${offer.manifest.name} interrupted: ${describeTransportFailure(e).message}`,
      });
    }
    closeSync(fd);
    const got = hash.digest('hex');
    if (got !== offer.manifest.module.sha256) {
      rmSync(part, { force: true });
      throw new SutureError({
        code: 'AGENT-MODULE-HASH-MISMATCH',
        message: `module of patch ${offer.manifest.name} has sha256 ${got}, its signed manifest says ${offer.manifest.module.sha256}`,
        why: 'the module was changed after it was signed, or corrupted in transit',
        hint: 'nothing was loaded; re-publish the patch on the server',
      });
    }
    renameSync(part, dest);
  }
}
