/*
 * `suture server [--data DIR] [--database postgres://…] [--listen ADDR] [--admin-token T]`
 *
 * Runs the delivery server (src/server/) in the foreground until SIGINT/SIGTERM. SQLite under --data by
 * default; --database postgres://… shares one PostgreSQL between several instances (artifacts stay
 * under --data, which those instances must then share). First start prints the admin token.
 * --trust-proxy names the TLS proxy whose X-Forwarded-* headers count; --metrics-token protects /metrics.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { SutureError } from '../../diagnostic.js';
import { keyFingerprint } from '../../manifest/signature.js';
import { parseListen, type ServerOptions, startServer } from '../../server/server.js';
import { startWorkers } from '../../server/workers.js';

function defaultDataDir(): string {
  if (process.env.SUTURE_DATA) return process.env.SUTURE_DATA;
  return process.getuid?.() === 0
    ? '/var/lib/suture'
    : join(homedir(), '.local', 'share', 'suture', 'server');
}

function positiveInt(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) {
      throw new SutureError({
        code: 'CLI-ARGUMENT',
        message: `${name} must be a positive integer, got ${v}`,
      });
    }
    return n;
  };
}

export function register(program: Command): void {
  program
    .command('server')
    .description('run the delivery server: machine API /v1, admin API, /metrics, dashboard')
    .option(
      '--data <dir>',
      'data directory (SQLite file, artifacts, admin-token) [$SUTURE_DATA]',
      defaultDataDir(),
    )
    .option('--database <url>', 'postgres://user:pass@host:port/db instead of SQLite under --data')
    .option('--listen <addr>', 'HOST:PORT to listen on', '127.0.0.1:7070')
    .option(
      '--admin-token <token>',
      'set the admin token (default: generated at first start) [$SUTURE_ADMIN_TOKEN]',
    )
    .option(
      '--checkin-interval <seconds>',
      'check-in interval told to agents',
      positiveInt('--checkin-interval'),
      600,
    )
    .option('--max-upload <bytes>', 'largest module upload', positiveInt('--max-upload'), 64 * 1024 * 1024)
    .option(
      '--checkin-rate <n>',
      'check-ins per minute allowed per machine',
      positiveInt('--checkin-rate'),
      60,
    )
    .option('--tls-cert <file>', 'serve HTTPS with this PEM certificate (chain); needs --tls-key')
    .option('--tls-key <file>', 'the PEM private key of --tls-cert')
    .option(
      '--trust-proxy <addrs>',
      'the TLS proxy in front (comma-separated addresses or loopback/linklocal/uniquelocal): its X-Forwarded-For/-Proto/-Host count for client addresses, rate limits and Secure cookies',
    )
    .option('--metrics-token <token>', 'require this Bearer token on /metrics [$SUTURE_METRICS_TOKEN]')
    .option(
      '--signing-key <file>',
      'keep the signing key in this file (0600, created if missing) instead of the database',
    )
    .option(
      '--workers <n>',
      'server processes sharing the port (PostgreSQL only): one per core it may use',
      positiveInt('--workers'),
      1,
    )
    .option('--quiet', 'no request log')
    .action(
      async (o: {
        data: string;
        database?: string;
        listen: string;
        adminToken?: string;
        checkinInterval: number;
        maxUpload: number;
        checkinRate: number;
        tlsCert?: string;
        tlsKey?: string;
        trustProxy?: string;
        metricsToken?: string;
        signingKey?: string;
        workers: number;
        quiet?: boolean;
      }) => {
        const database = o.database ?? process.env.SUTURE_DATABASE;
        const { host, port } = parseListen(o.listen);
        const metricsToken = o.metricsToken ?? process.env.SUTURE_METRICS_TOKEN;
        if (metricsToken !== undefined && metricsToken.length < 16) {
          throw new SutureError({
            code: 'SERVER-METRICS-TOKEN',
            message: 'the metrics token must be at least 16 characters',
            hint: 'e.g. --metrics-token "$(openssl rand -hex 24)"',
          });
        }
        if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) {
          throw new SutureError({
            code: 'SERVER-TLS',
            message: '--tls-cert and --tls-key go together',
            hint: 'give both PEM files, or neither to serve plain HTTP behind a TLS proxy',
          });
        }
        const options: ServerOptions = {
          dataDir: o.data,
          database,
          host,
          port,
          adminToken: o.adminToken ?? process.env.SUTURE_ADMIN_TOKEN,
          checkinIntervalSeconds: o.checkinInterval,
          limits: { upload: o.maxUpload, checkinPerMinute: o.checkinRate },
          logger: !o.quiet,
          ...(o.tlsCert && o.tlsKey ? { tls: { certFile: o.tlsCert, keyFile: o.tlsKey } } : {}),
          ...(o.trustProxy ? { trustProxy: o.trustProxy.split(',').map((a) => a.trim()) } : {}),
          ...(metricsToken ? { metricsToken } : {}),
          ...(o.signingKey ? { signingKeyFile: o.signingKey } : {}),
        };
        const s =
          o.workers > 1
            ? await startWorkers(options, o.workers)
            : await startServer(options).then((r) => ({ ...r, custody: r.signer.custody }));
        const db = database ? 'PostgreSQL' : `SQLite ${join(o.data, 'suture.db')}`;
        const workers = o.workers > 1 ? `, ${o.workers} workers` : '';
        process.stderr.write(`suture server listening on ${s.url} (${db}, data ${o.data}${workers})\n`);
        process.stderr.write(
          `  signing key ed25519 ${keyFingerprint(s.publicKey)} (public: ${s.publicKey}), kept in ${s.custody}\n`,
        );
        process.stderr.write(`  dashboard ${s.url}/   metrics ${s.url}/metrics\n`);
        if (s.createdAdminToken) {
          process.stderr.write(`  admin token (shown once, saved to ${join(o.data, 'admin-token')}):\n`);
          process.stdout.write(`${s.createdAdminToken}\n`);
        }
        await new Promise<void>((resolve) => {
          const stop = () => {
            process.stderr.write('suture server: shutting down\n');
            s.close().then(resolve, resolve);
          };
          process.once('SIGINT', stop);
          process.once('SIGTERM', stop);
        });
      },
    );
}
