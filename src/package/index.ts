/*
 * `npm run package`: builds the release tarball (tarball.ts) into artifacts/release/ (or the
 * directory given as the first argument) and prints its path.
 */
import { join } from 'node:path';
import { SutureError } from '../diagnostic.js';
import { repoRoot } from '../vm/suture-files.js';
import { buildTarball } from './tarball.js';

try {
  const out = process.argv[2] ?? join(repoRoot(), 'artifacts', 'release');
  const r = await buildTarball(out);
  console.log(`${r.path} (${r.files} files)`);
} catch (e) {
  if (e instanceof SutureError) {
    console.error(e.message);
    process.exit(1);
  }
  throw e;
}
