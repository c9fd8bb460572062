// What `run` prints: the per-owner table, or with --json one object on the last line
// (its shape is a public contract: DESIGN.md "Public surface", README "What netpd run
// shows"), and the progress bar for large files.

import { relative } from 'node:path';
import { statSync } from 'node:fs';
import cliProgress from 'cli-progress';
import type { Arena } from '../arena.js';
import type { DispatcherStats } from '../dispatcher.js';
import { SAMPLE } from './options.js';

export function jsonReport(s: DispatcherStats) {
  const owners: Record<string, { packets: number; bytes: number }> = {};
  for (const o of s.owners) owners[o.name] = { packets: o.packets, bytes: o.bytes };
  const bytes = s.owners.reduce((b, o) => b + o.bytes, s.default.bytes);
  return {
    packets: s.in,
    bytes,
    owners,
    default: { packets: s.default.packets, bytes: s.default.bytes },
    drops: s.dropped,
  };
}

/** The table: a title line, one row per owner and the default, and the drops. */
export function table(title: string, s: DispatcherStats, arena: Arena, span: number): string {
  const rows = [...s.owners.map((o) => [o.name, o.packets, o.bytes] as const), ['(default)', s.default.packets, s.default.bytes] as const];
  const total = s.in || 1;
  const head = ['owner', 'packets', 'bytes', 'share', 'pkt/s'];
  const body = rows.map(([name, p, b]) => [name, String(p), String(b), `${((100 * p) / total).toFixed(1)}%`, span > 0 ? (p / span).toFixed(1) : '-']);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  const drops = Object.entries(s.dropped).filter(([, n]) => n > 0).map(([k, n]) => `${k} ${n}`).join(', ') || 'none';
  return [
    title,
    line(head),
    ...body.map(line),
    `drops: ${drops}; truncated to slot: ${arena.stats.truncated}`,
    '',
  ].join('\n');
}

export function displayName(file: string): string {
  if (file === '-') return 'standard input';
  const rel = relative(process.cwd(), file);
  return file === SAMPLE ? 'samples/sample.pcap (bundled sample)' : rel.startsWith('..') ? file : rel;
}

/** A progress bar on stderr for files of 64 MiB and more, when stderr is a terminal. */
export function progressBar(file: string, quiet: boolean): cliProgress.SingleBar | undefined {
  if (quiet || !process.stderr.isTTY) return undefined;
  let size = 0;
  try {
    size = statSync(file).size;
  } catch {
    return undefined;
  }
  if (size < 64 * 1024 * 1024) return undefined;
  const bar = new cliProgress.SingleBar({ stream: process.stderr, format: 'reading {bar} {percentage}% | {value}/{total} bytes' }, cliProgress.Presets.shades_classic);
  bar.start(size, 0);
  return bar;
}

export const round = (x: number, digits: number): number => Number(x.toFixed(digits));
