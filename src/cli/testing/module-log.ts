/*
 * A module loader hook for tests (`node --experimental-loader`): appends every URL node loads to the
 * file named by SUTURE_MODULE_LOG, one a line, so a test can see a command's whole import graph —
 * ours, node's built-ins and packages (a package's CommonJS files show as its ESM entry).
 */
import { appendFileSync } from 'node:fs';

type Next = (url: string, context: unknown) => Promise<unknown>;

export async function load(url: string, context: unknown, next: Next): Promise<unknown> {
  const log = process.env.SUTURE_MODULE_LOG;
  if (log) appendFileSync(log, `${url}\n`);
  return next(url, context);
}
