/*
 * The operator's commands run in-process, parsed by commander exactly as the CLI does, against a real
 * server on loopback: for cli/commands' tests. A test registers only the commands it drives (so it does
 * not depend on other stages); the rig starts the server in a scratch directory before the file's tests
 * and removes both after them, and passes `--server` and the admin token to every call.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { Command } from 'commander';
import { type RunningServer, startServer } from '../../server/server.js';

/** A sub-command's `register(program)`, as each file of cli/commands exports it. */
export type RegisterCommand = (program: Command) => void;

export class AdminCliRig {
  /** the scratch directory (the server's data is in `data/` below it) */
  dir = '';
  server!: RunningServer;
  /** what the last `suture` call printed on stderr */
  lastStderr = '';

  constructor(
    name: string,
    private readonly commands: RegisterCommand[],
  ) {
    before(async () => {
      this.dir = await mkdtemp(join(tmpdir(), `suture-${name}-`));
      this.server = await startServer({ dataDir: join(this.dir, 'data') });
    });
    after(async () => {
      await this.server?.close();
      await rm(this.dir, { recursive: true, force: true });
    });
  }

  /** Run `suture ARGS…` with the registered commands; returns what it printed on stdout. */
  readonly suture = async (...args: string[]): Promise<string> => {
    const program = new Command('suture').exitOverride();
    for (const register of this.commands) register(program);
    const out: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    const err = process.stderr.write.bind(process.stderr);
    // the commands write strings; the test runner writes its own events as bytes: let those through,
    // or the result of a test that ends while another one captures is lost
    process.stdout.write = ((s: string | Uint8Array, ...rest: never[]) =>
      typeof s === 'string' ? out.push(s) > 0 : write(s, ...rest)) as typeof process.stdout.write;
    this.lastStderr = '';
    process.stderr.write = ((s: string | Uint8Array, ...rest: never[]) => {
      if (typeof s !== 'string') return err(s, ...rest);
      this.lastStderr += s;
      return true;
    }) as typeof process.stderr.write;
    try {
      await program.parseAsync([
        'node',
        'suture',
        ...args,
        '--server',
        this.server.url,
        '--admin-token',
        this.server.createdAdminToken ?? '',
      ]);
    } finally {
      process.stdout.write = write;
      process.stderr.write = err;
    }
    return out.join('');
  };
}
