/*
 * Starting a Suture server: open the store, the artifact store and the signing key, then listen.
 *
 * First start: creates the ed25519 signing key and the admin token. The key is kept in the database
 * (settings table) so that every instance sharing a PostgreSQL database signs with the same key, or in
 * the file `--signing-key` names (signing.ts); the public key is also written to
 * `<data>/signing-key.pub` for operators. The data directory is made 0700 and the database files 0600
 * at every start, whatever existed before (data-dir.ts). The admin token is printed
 * once and written to `<data>/admin-token` (mode 0600); only its sha256 is stored. `--admin-token`
 * sets (or replaces) it explicitly.
 *
 * With a certificate and key the server speaks HTTPS itself; otherwise it speaks HTTP and belongs
 * behind a TLS-terminating proxy, since enrollment tokens and machine credentials are bearer secrets.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import { SutureError } from '../diagnostic.js';
import { buildApp, type Limits } from './app.js';
import { ArtifactStore } from './artifacts.js';
import { hashSecret, newSecret } from './credentials.js';
import { secureDatabaseFiles, secureDataDir } from './data-dir.js';
import { ServerSigner } from './signing.js';
import { openStore, type Store } from './store.js';

export interface ServerOptions {
  /** data directory: SQLite file, artifacts, admin-token, signing-key.pub */
  dataDir: string;
  /** `postgres://…`; default: SQLite at `<data>/suture.db` */
  database?: string;
  host?: string;
  /** 0 = any free port */
  port?: number;
  adminToken?: string;
  checkinIntervalSeconds?: number;
  limits?: Partial<Limits>;
  logger?: boolean;
  offerTtlMs?: number;
  /** how long one /metrics rendering is served (ms, default 5000; 0 = always fresh) */
  metricsCacheMs?: number;
  /** serve HTTPS: PEM files of the certificate (chain) and its private key */
  tls?: { certFile: string; keyFile: string };
  /** addresses of the TLS proxy whose X-Forwarded-* headers count (see app.ts) */
  trustProxy?: string[];
  /** require this Bearer token on /metrics */
  metricsToken?: string;
  /** keep the signing key in this file (0600; created if missing) instead of the database */
  signingKeyFile?: string;
}

export interface RunningServer {
  app: FastifyInstance;
  store: Store;
  url: string;
  /** the current public key (raw base64); changes with `suture key rotate` */
  readonly publicKey: string;
  signer: ServerSigner;
  /** set when this start created the admin token */
  createdAdminToken?: string;
  close(): Promise<void>;
}

/** Read and check the certificate and key, so a bad file is a diagnostic, not a TLS stack trace. */
async function readTls(tls: { certFile: string; keyFile: string }): Promise<{ cert: Buffer; key: Buffer }> {
  const read = async (file: string, what: string) => {
    try {
      return await readFile(file);
    } catch (e) {
      throw new SutureError({
        code: 'SERVER-TLS',
        message: `cannot read the TLS ${what} ${file}: ${(e as Error).message}`,
        hint: `pass a PEM file with --tls-${what === 'certificate' ? 'cert' : 'key'}`,
      });
    }
  };
  const cert = await read(tls.certFile, 'certificate');
  const key = await read(tls.keyFile, 'key');
  try {
    createSecureContext({ cert, key });
  } catch (e) {
    throw new SutureError({
      code: 'SERVER-TLS',
      message: `the TLS certificate ${tls.certFile} and key ${tls.keyFile} do not make a usable pair: ${(e as Error).message}`,
      hint: 'both must be PEM; the key must be the private key of the certificate',
    });
  }
  return { cert, key };
}

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const tls = opts.tls ? await readTls(opts.tls) : undefined;
  secureDataDir(opts.dataDir);
  const database = opts.database ?? join(opts.dataDir, 'suture.db');
  let store: Store;
  try {
    store = await openStore(database);
  } catch (e) {
    throw new SutureError({
      code: 'SERVER-DATABASE',
      message: `cannot open the database ${database.replace(/\/\/[^@/]*@/, '//…@')}: ${(e as Error).message}`,
      hint: 'check --database (postgres://user:pass@host:port/db) or the permissions of --data',
    });
  }
  try {
    if (!opts.database) secureDatabaseFiles(database);
    const artifacts = new ArtifactStore(opts.dataDir, store);
    await artifacts.init();
    const signer = await ServerSigner.open(store, opts.signingKeyFile);
    await writeFile(join(opts.dataDir, 'signing-key.pub'), `${signer.publicKey}\n`);

    let createdAdminToken: string | undefined;
    if (opts.adminToken) {
      if (opts.adminToken.length < 16) {
        throw new SutureError({
          code: 'SERVER-ADMIN-TOKEN',
          message: 'the admin token must be at least 16 characters',
          hint: 'omit --admin-token to have one generated',
        });
      }
      const wanted = hashSecret(opts.adminToken);
      const before = await store.getSetting('admin_token_hash');
      // a different token replaces the old one as a rotation does: its dashboard sessions end too
      if (before === undefined) await store.setSettingIfAbsent('admin_token_hash', wanted);
      else if (before !== wanted) {
        await store.rotateAdminToken(before, wanted, {
          at: new Date().toISOString(),
          actor: 'server --admin-token',
          action: 'admin.rotate-token',
          target: 'admin-token',
          detail: {},
        });
      }
    } else if (!(await store.getSetting('admin_token_hash'))) {
      const token = newSecret('admin');
      const stored = await store.setSettingIfAbsent('admin_token_hash', hashSecret(token));
      if (stored === hashSecret(token)) {
        createdAdminToken = token;
        await writeFile(join(opts.dataDir, 'admin-token'), `${token}\n`, { mode: 0o600 });
      }
    }

    const app = await buildApp({
      store,
      artifacts,
      signer,
      checkinIntervalSeconds: opts.checkinIntervalSeconds,
      limits: opts.limits,
      logger: opts.logger,
      offerTtlMs: opts.offerTtlMs,
      metricsCacheMs: opts.metricsCacheMs,
      ...(tls ? { tls } : {}),
      ...(opts.trustProxy ? { trustProxy: opts.trustProxy } : {}),
      ...(opts.metricsToken ? { metricsToken: opts.metricsToken } : {}),
    });
    const host = opts.host ?? '127.0.0.1';
    await app.listen({ host, port: opts.port ?? 0 });
    const addr = app.server.address();
    const port = typeof addr === 'object' && addr ? addr.port : opts.port;
    const url = `${tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
    const out: RunningServer = {
      app,
      store,
      url,
      signer,
      get publicKey() {
        return signer.publicKey;
      },
      async close() {
        await app.close();
        await store.close();
      },
    };
    if (createdAdminToken) out.createdAdminToken = createdAdminToken;
    return out;
  } catch (e) {
    await store.close().catch(() => {});
    throw e;
  }
}

/** `ADDR` as `host:port`, `:port`, `port` or `[v6]:port`. */
export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*))?:?(\d+)$/.exec(listen.trim());
  const port = m ? Number(m[3]) : Number.NaN;
  if (!m || !(port >= 0 && port < 65536)) {
    throw new SutureError({
      code: 'SERVER-LISTEN',
      message: `cannot parse --listen ${listen}`,
      hint: 'use HOST:PORT, e.g. 127.0.0.1:7070 or 0.0.0.0:7070',
    });
  }
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}
