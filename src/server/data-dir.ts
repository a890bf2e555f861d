/*
 * The data directory's permissions: 0700 for the directory, 0600 for the database files, whatever
 * existed before.
 *
 * The SQLite database holds the signing key (unless `--signing-key` puts it elsewhere), token and
 * credential hashes and the audit log. A directory made by someone else — systemd's `StateDirectory=`
 * is 0755, a hand-made one follows the umask — is tightened at every start, and the database files
 * (`suture.db`, its `-wal` and `-shm`, created with the process umask) are made 0600 once open. A
 * directory this user cannot change is an error naming the fix, never a silent pass.
 */
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { SutureError } from '../diagnostic.js';

function tighten(path: string, mode: number): void {
  try {
    chmodSync(path, mode);
  } catch (e) {
    throw new SutureError({
      code: 'SERVER-DATA-PERMISSIONS',
      message: `cannot make ${path} mode ${mode.toString(8)}: ${(e as Error).message}`,
      location: { file: path },
      why: 'the data directory holds the database (with the signing key unless --signing-key is given); others must not read it',
      hint: `run the server as the owner of ${path}, or: chown -R <server user> ${path} && chmod 700 ${path}`,
    });
  }
}

/** Create the data directory if needed and make it 0700 (and a pre-existing admin-token 0600). */
export function secureDataDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  tighten(dir, 0o700);
  if (existsSync(adminTokenPath(dir))) tighten(adminTokenPath(dir), 0o600);
}

/** Make the SQLite database files 0600 (call after opening: WAL and SHM exist from then on). */
export function secureDatabaseFiles(database: string): void {
  for (const f of [database, `${database}-wal`, `${database}-shm`]) if (existsSync(f)) tighten(f, 0o600);
}

export function adminTokenPath(dir: string): string {
  return join(dir, 'admin-token');
}
