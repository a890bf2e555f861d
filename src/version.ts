/*
 * Suture's version: one string, read from package.json when first asked for.
 *
 * The CLI's `--version`, the agent's check-in and the tool field of every manifest all say the same
 * thing, and a release changes it in one place. package.json sits next to both src/ and dist/, so the
 * same relative URL finds it whether this file runs compiled or from a checkout (and inside the VM,
 * where the initramfs carries package.json next to dist/). Leaf: imports nothing of ours but diagnostic.
 */
import { readFileSync } from 'node:fs';
import { fail } from './diagnostic.js';

const PACKAGE_JSON = new URL('../package.json', import.meta.url);

function readVersion(): string {
  let text: string;
  try {
    text = readFileSync(PACKAGE_JSON, 'utf8');
  } catch (e) {
    fail('SUTURE-NO-PACKAGE-JSON', `cannot read ${PACKAGE_JSON.pathname}: ${(e as Error).message}`, {
      why: 'the version is read from the package.json installed next to dist/',
      hint: 'reinstall suture, or run it from a checkout with its package.json',
    });
  }
  const version = (JSON.parse(text) as { version?: unknown }).version;
  if (typeof version !== 'string' || !/^\d+\.\d+\.\d+/.test(version)) {
    fail('SUTURE-NO-PACKAGE-JSON', `${PACKAGE_JSON.pathname} has no semantic version`, {
      why: 'the version is read from the package.json installed next to dist/',
      hint: 'set "version" in package.json, e.g. "0.1.0"',
    });
  }
  return version;
}

/** Suture's version, as package.json says (e.g. `0.1.0`). */
export const VERSION: string = readVersion();
