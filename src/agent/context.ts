/*
 * What every step of a check-in is given: the state directory, the kernel, and where to log.
 */
import type { KernelPort } from './kernel-port.js';

export interface AgentContext {
  stateDir: string;
  kernel: KernelPort;
  hostname: string;
  /** how long the host layer waits for a transition before it gives up */
  applyTimeoutMs: number;
  log: (line: string) => void;
}
