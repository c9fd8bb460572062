// netpd's classic BPF interpreter against libpcap: every program tcpdump compiled
// (optimized and not) over captures made by scapy, tcpdump on a veth and tcpreplay,
// must accept exactly the packets libpcap's bpf_filter accepted. The expected sets
// come from test/fixtures/bpf/make-bpf-fixtures.mjs (see its --check mode in CI).
import { describe, it, expect, beforeAll } from 'vitest';
import { readFileSync } from 'node:fs';
import { Arena } from '../bindings/arena.js';
import { BpfFilter } from '../bindings/bpf.js';
import { loadCapture } from './support/captures.js';

interface Case { expr: string; optimized: boolean; ddd: string; accepted: Record<string, number[]> }
const fixture = JSON.parse(readFileSync(new URL('./fixtures/bpf/libpcap.json', import.meta.url), 'utf8')) as { captures: string[]; cases: Case[] };

function hasBackwardJump(ddd: string): boolean {
  return ddd.trim().split('\n').slice(1).some((line) => {
    const [code, , , k] = line.split(' ').map(Number);
    return code === 0x05 && k >= 0x80000000;
  });
}

describe('classic BPF interpreter agrees with libpcap', () => {
  const MAX = 1024;
  const arena = Arena.create({ slotSize: 65536, slotCount: 4096, controlBytes: 64 * 1024 * 1024 });
  const loaded = new Map<string, { vec: Uint32Array; n: number }>();
  const out = arena.burstVector(MAX);

  beforeAll(() => {
    for (const name of fixture.captures) loaded.set(name, loadCapture(arena, name, MAX));
  });

  it(`covers at least 100 programs over the reference captures`, () => {
    expect(new Set(fixture.cases.map((c) => c.expr)).size).toBeGreaterThanOrEqual(100);
    expect(fixture.captures.length).toBeGreaterThanOrEqual(5);
  });

  it('accepts exactly the packets libpcap accepts, for every program and capture', () => {
    const mismatches: string[] = [];
    for (const c of fixture.cases) {
      // libpcap's user-space validator lets `protochain` loop with a backward jump; the
      // Linux rules netpd applies (as the kernel does for SO_ATTACH_FILTER) refuse it.
      if (hasBackwardJump(c.ddd)) {
        expect(() => new BpfFilter(arena, c.ddd), c.expr).toThrow(/jump target outside the program/);
        continue;
      }
      const filter = new BpfFilter(arena, c.ddd);
      for (const name of fixture.captures) {
        const { vec, n } = loaded.get(name)!;
        filter.run(vec, n, out);
        const ours: number[] = [];
        for (let i = 0; i < n; i++) if (out[i] !== 0) ours.push(i + 1);
        const theirs = c.accepted[name];
        if (ours.join(',') !== theirs.join(',')) {
          mismatches.push(`${c.optimized ? '' : '-O '}"${c.expr}" on ${name}: netpd [${ours.join(',')}] libpcap [${theirs.join(',')}]`);
        }
      }
    }
    expect(mismatches).toEqual([]);
  });
});
