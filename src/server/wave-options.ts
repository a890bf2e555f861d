/*
 * The rollout options `suture publish` and `suture promote` share, from the command line to a wave
 * plan: `--waves 10,50,100 --gate-checkins 20 --soak 10m`. Only the shape is checked here (numbers,
 * a duration); the server decides what is a valid plan (1..100, strictly growing) and answers 400.
 */
import type { Command } from 'commander';
import { SutureError } from '../diagnostic.js';
import type { WavePlanRequest } from './admin-protocol.js';

export interface WaveCliOptions {
  waves?: string;
  gateCheckins?: string;
  soak?: string;
}

export function addWaveOptions(cmd: Command): Command {
  return cmd
    .option('--waves <list>', 'roll the tier out in waves: cumulative percentages, e.g. 10,50,100')
    .option('--gate-checkins <n>', 'healthy check-ins a wave needs before the next one opens', '1')
    .option('--soak <duration>', 'minimum time a wave stays open before the next (30s, 10m, 2h)', '10m');
}

function bad(option: string, value: string, hint: string): SutureError {
  return new SutureError({ code: 'CLI-ROLLOUT-OPTION', message: `${option} ${value} is not valid`, hint });
}

/** seconds in `30`, `30s`, `10m`, `2h`, `1d` */
export function parseDuration(text: string): number {
  const m = /^(\d+)([smhd]?)$/.exec(text.trim());
  if (!m) throw bad('--soak', text, 'a whole number with s, m, h or d, e.g. 10m');
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] ?? ''] ?? 1;
  return Number(m[1]) * unit;
}

/** The wave plan the options describe; undefined without `--waves`. */
export function wavePlanFrom(o: WaveCliOptions): WavePlanRequest | undefined {
  if (o.waves === undefined) return undefined;
  const waves = o.waves.split(',').map((w) => {
    if (!/^\s*\d+\s*%?\s*$/.test(w))
      throw bad('--waves', o.waves ?? '', 'percentages separated by commas, e.g. 10,50,100');
    return Number.parseInt(w, 10);
  });
  const gate = o.gateCheckins ?? '1';
  if (!/^\d+$/.test(gate)) throw bad('--gate-checkins', gate, 'a whole number of check-ins');
  return { waves, gateCheckins: Number(gate), soakSeconds: parseDuration(o.soak ?? '10m') };
}
