/*
 * Headless Chromium for the dashboard's browser tests (playwright-core drives Debian's
 * /usr/bin/chromium; no browser download). Where it is not installed the tests skip with MISSING.
 */
import { existsSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

/** Quiet, sandbox-free, no network of its own: nothing but the pages a test opens. */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Why a browser test skipped. */
export const CHROMIUM_MISSING = `${CHROMIUM} is missing (apt-get install chromium); CI installs it`;

/** The browser, or undefined when Debian's chromium is not installed. */
export async function launchChromium(): Promise<Browser | undefined> {
  if (!existsSync(CHROMIUM)) return undefined;
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}
