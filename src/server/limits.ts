/*
 * The server's request limits: body and module sizes, and the per-minute budgets the rate limiter
 * (rate-limit.ts) enforces. Its own file so the limiter and the route context both read it without
 * importing each other.
 */
export interface Limits {
  /** largest JSON body on the machine API (bytes) */
  machineBody: number;
  /** largest JSON body on the admin API (bytes) */
  adminBody: number;
  /** largest module upload (bytes) */
  upload: number;
  /** largest module publish accepts (bytes), and the most executable bytes (SHF_EXECINSTR) in it */
  moduleBytes: number;
  moduleText: number;
  /**
   * requests per minute (rate-limit.ts): enrollments and logins per client address; check-ins,
   * reports and downloads per machine credential; admin and other calls per token or address
   */
  enrollPerMinute: number;
  checkinPerMinute: number;
  adminPerMinute: number;
  loginPerMinute: number;
  /** failed authentications per client address per minute before everything from it is refused */
  authFailuresPerMinute: number;
}

export const defaultLimits: Limits = {
  machineBody: 64 * 1024,
  adminBody: 1024 * 1024,
  upload: 64 * 1024 * 1024,
  moduleBytes: 16 * 1024 * 1024,
  moduleText: 4 * 1024 * 1024,
  enrollPerMinute: 60,
  checkinPerMinute: 60,
  adminPerMinute: 600,
  loginPerMinute: 20,
  authFailuresPerMinute: 30,
};
