/*
 * The livepatch's name: from the diff's file name unless given, and checked, since it becomes
 * `livepatch-NAME.ko`, the module's name and the manifest's.
 */
import { basename } from 'node:path';
import { fail } from '../diagnostic.js';

/** `meminfo-string.patch` → `meminfo-string` (lowercase letters, digits, - and _ only, ≤ 48). */
export function defaultName(diffPath: string): string {
  const base = basename(diffPath)
    .replace(/\.(patch|diff)$/i, '')
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 48);
  return base || 'patch';
}

export function checkName(name: string): string {
  if (!/^[a-z0-9_-]{1,48}$/.test(name)) {
    fail('BUILD-BAD-NAME', `\`${name}\` is not a valid livepatch name`, {
      hint: 'use 1 to 48 lowercase letters, digits, - and _ (it becomes livepatch-NAME.ko)',
    });
  }
  return name;
}
