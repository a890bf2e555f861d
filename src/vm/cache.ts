/*
 * Where the VM harness keeps what it builds once and reuses: initramfs layers (busybox, the Node
 * runtime, Suture itself) and generated module indexes, under `$SUTURE_CACHE/vm` (default
 * `~/.cache/suture/vm`). Entries are named by the SHA-256 of their inputs and written under a temporary
 * name then renamed, so concurrent builders never see half an entry and a stale one is never reused.
 */
import { join } from 'node:path';
import { cacheRoot } from '../kernel/cache.js';

export function vmCacheDir(): string {
  return join(cacheRoot(), 'vm');
}
