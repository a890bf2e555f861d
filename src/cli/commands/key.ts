/*
 * `suture key [--json]` and `suture key rotate [--json]`: the server's signing key.
 *
 * `key` shows which key signs (fingerprint, public key, where the private key lives, how many
 * rotations). `key rotate` makes a new key on the server, announced under the old one: agents move
 * their trust to it at their next check-in, and only through that announcement. The rotation is in the
 * audit log (`key-rotate`). See src/server/signing.ts.
 */
import type { Command } from 'commander';
import { AdminClient, type AdminCliOptions, adminTarget } from '../../server/admin-client.js';
import type { KeyInfo, KeyRotation } from '../../server/key-api.js';

function withAdmin(c: Command): Command {
  return c
    .option('--server <url>', 'server URL [$SUTURE_SERVER]')
    .option('--admin-token <token>', 'admin token [$SUTURE_ADMIN_TOKEN]')
    .option('--json', 'JSON output');
}

export function register(program: Command): void {
  const key = withAdmin(
    program.command('key').description("the server's signing key; `key rotate` replaces it"),
  );
  key.action(async (o: AdminCliOptions) => {
    const info = await new AdminClient(adminTarget(o)).call<KeyInfo>('GET', '/admin/v1/key');
    if (o.json) {
      process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
      return;
    }
    process.stdout.write(
      `signing key ed25519 ${info.fingerprint} (public: ${info.publicKey})\nkept in ${info.custody}; ${info.rotations} rotation(s)\n`,
    );
  });
  withAdmin(
    key
      .command('rotate')
      .description(
        'make a new signing key, announced under the old one; agents follow at their next check-in',
      ),
  ).action(async (_o: AdminCliOptions, cmd: Command) => {
    // `--server` and friends may have been taken by `key` itself: read both levels
    const o = cmd.optsWithGlobals<AdminCliOptions>();
    const r = await new AdminClient(adminTarget(o)).call<KeyRotation>('POST', '/admin/v1/key/rotate', {});
    if (o.json) {
      process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      return;
    }
    process.stdout.write(
      `new signing key ed25519 ${r.fingerprint} (public: ${r.publicKey}), announced under the previous key at ${r.at}\nagents trust it from their next check-in; audited as key-rotate\n`,
    );
  });
}
