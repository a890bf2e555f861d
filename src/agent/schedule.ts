/*
 * When to check in next: the server's interval with jitter, or exponential back-off after failures.
 *
 * A fleet must not check in in lock-step (a server restart would otherwise be followed by every machine
 * at the same second), so each wait is the interval scaled by a random factor in [1 - j, 1 + j]. After
 * n consecutive failed check-ins the wait is base · 2^(n-1), capped, with the same jitter: a server
 * that is down sees fewer and fewer attempts, and one that comes back is found again within the cap.
 */

export interface Schedule {
  /** seconds between successful check-ins (the server's, or an override) */
  intervalSeconds: number;
  /** first back-off wait, seconds */
  backoffBaseSeconds: number;
  /** longest back-off wait, seconds */
  backoffCapSeconds: number;
  /** relative jitter, 0..1 */
  jitter: number;
}

/** Default back-off: starts at min(interval, 15 s), doubles, capped at max(interval, 10 min). */
export function defaultSchedule(intervalSeconds: number): Schedule {
  return {
    intervalSeconds,
    backoffBaseSeconds: Math.min(intervalSeconds, 15),
    backoffCapSeconds: Math.max(intervalSeconds, 600),
    jitter: 0.2,
  };
}

/** Seconds to wait before the next check-in, after `failures` consecutive failures (0 = last one ok). */
export function nextDelaySeconds(s: Schedule, failures: number, random: () => number = Math.random): number {
  const base =
    failures <= 0
      ? s.intervalSeconds
      : Math.min(s.backoffCapSeconds, s.backoffBaseSeconds * 2 ** Math.min(failures - 1, 30));
  const factor = 1 - s.jitter + 2 * s.jitter * random();
  return Math.max(0.05, base * factor);
}
