/*
 * Test support: an agent state that is enrolled and has checked in once, written into `dir` (the
 * starting point of the journal and kernel-change tests, which then add their patch records).
 */
import { type AgentState, updateState } from '../state.js';

export function checkedInState(dir: string, more: (s: AgentState) => void = () => {}): void {
  updateState(dir, (s) => {
    s.enrollment = {
      server: 'http://127.0.0.1:1',
      machineId: 'm-0123456789abcdef',
      credential: 'c'.repeat(40),
      serverPublicKey: 'k'.repeat(44),
      tier: 'stable',
      enrolledAt: new Date().toISOString(),
    };
    s.lastSuccessAt = new Date().toISOString();
    more(s);
  });
}
