/*
 * Headless Chromium for the dashboard's browser tests (playwright-core drives Debian's
 * /usr/bin/chromium; no browser download). Where it is not installed the tests skip with
 * CHROMIUM_MISSING. DashboardRig is the server and browser pair of a dashboard test file.
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { type Browser, chromium } from 'playwright-core';
import { type RunningServer, type ServerOptions, startServer } from '../server.js';

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

/** Where the dashboard tests put their screenshots (git-ignored). */
export const SHOTS = join(process.cwd(), 'artifacts', 'server');

/**
 * A dashboard test's server (in a scratch directory) and the browser that drives it, started before
 * the file's tests and closed after them; `browser` is undefined when Chromium is missing.
 */
export class DashboardRig {
  dir = '';
  server!: RunningServer;
  browser: Browser | undefined;

  constructor(name: string, options: Omit<ServerOptions, 'dataDir'> = {}) {
    before(async () => {
      this.dir = await mkdtemp(join(tmpdir(), `suture-${name}-`));
      this.server = await startServer({ dataDir: join(this.dir, 'data'), ...options });
      await mkdir(SHOTS, { recursive: true });
      this.browser = await launchChromium();
    });
    after(async () => {
      await this.browser?.close();
      await this.server?.close();
      await rm(this.dir, { recursive: true, force: true });
    });
  }
}
