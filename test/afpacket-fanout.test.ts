// AfPacketSource fanout, on a real link: two sources in one PACKET_FANOUT group on the
// same interface split what arrives between them. Whatever the mode, together they
// must receive exactly what tcpdump (outside the group) captured on that interface at
// the same time — no frame lost, none given to both (compared as multisets of frame
// bytes). In hash mode each flow must stay with one member; in lb mode both get a fair
// share. The traffic is a tcpreplay of the bundled sample (a LAN mix of ~2900 frames
// in many TCP/UDP flows, ARP, IPv6) at a rate neither side drops at. Needs root,
// tcpdump and tcpreplay; without them the tests skip and say why.
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { AfPacketSource, Arena, NetpdError, type FanoutMode } from '../bindings/index.js';
import { createLab, type Lab } from './support/netns.mjs';
import { collector, hex, liveSkipReason, multisetDiff, readFrames, samplePath, settleAt, STALL_TOLERANT, type Frame } from './support/live-frames.js';

const reason = liveSkipReason('afpacket-fanout', ['tcpdump', 'tcpreplay']);
// Fanout group ids are shared by the whole network namespace: keep ours apart from
// those of other processes running these tests at the same time.
let nextGroup = ((process.pid * 7) & 0xfff) << 4;

/**
 * A flow key for plain (unfragmented) TCP and UDP over IPv4 or IPv6: the VLAN id, the
 * addresses and ports as sent, and the IPv6 flow label. The kernel's flow hash is a
 * function of these (it may ignore some), so frames with one key share one hash and
 * must go to one fanout member. Null for anything else.
 */
function flowKey(f: Frame): string | null {
  const d = f.data;
  let at = 12;
  let vlan = 0;
  for (let tags = 0; d.length >= at + 2 && [0x8100, 0x88a8].includes((d[at] << 8) | d[at + 1]) && tags < 2; tags++) {
    vlan = vlan * 4096 + (((d[at + 2] << 8) | d[at + 3]) & 0xfff);
    at += 4;
  }
  if (d.length < at + 2) return null;
  const type = (d[at] << 8) | d[at + 1];
  const ip = at + 2;
  if (type === 0x0800 && d.length >= ip + 20) {
    const ihl = (d[ip] & 15) * 4;
    const proto = d[ip + 9];
    const frag = ((d[ip + 6] << 8) | d[ip + 7]) & 0x3fff; // MF and offset
    if (frag !== 0 || (proto !== 6 && proto !== 17) || d.length < ip + ihl + 4) return null;
    return `${vlan}/4/${proto}/${hex(d.subarray(ip + 12, ip + 20))}/${hex(d.subarray(ip + ihl, ip + ihl + 4))}`;
  }
  if (type === 0x86dd && d.length >= ip + 44) {
    const next = d[ip + 6];
    if (next !== 6 && next !== 17) return null;
    const label = ((d[ip + 1] & 15) << 16) | (d[ip + 2] << 8) | d[ip + 3];
    return `${vlan}/6/${next}/${label}/${hex(d.subarray(ip + 8, ip + 40))}/${hex(d.subarray(ip + 40, ip + 44))}`;
  }
  return null;
}

describe.skipIf(reason !== null)('AfPacketSource fanout', () => {
  let lab: Lab;
  beforeEach(async () => { lab = await createLab('fan', { mtu: 9000 }); });
  afterEach(async () => { await lab?.destroy(); });

  const cases: { mode: FanoutMode; rxMode: 'ring' | 'mmsg' }[] = [
    { mode: 'hash', rxMode: 'ring' },
    { mode: 'hash', rxMode: 'mmsg' },
    { mode: 'lb', rxMode: 'ring' },
    { mode: 'cpu', rxMode: 'ring' },
  ];

  it.each(cases)('two members in $mode mode ($rxMode) split the traffic: together exactly what tcpdump saw, none twice', async ({ mode, rxMode }) => {
    const arena = Arena.create({ slotSize: 2048, slotCount: 8192 });
    const group = nextGroup++;
    const members = [collector(arena), collector(arena)];
    const sources = members.map((m) => AfPacketSource.open(lab.a, { arena, rxMode, onBurst: m.onBurst, fanout: { group, mode }, ...STALL_TOLERANT }));
    try {
      const dump = await lab.tcpdump({ side: 'a', args: ['--time-stamp-precision=nano'] });
      const replay = await lab.tcpreplay(samplePath, { pps: 20000 });
      expect(replay.failed).toBe(0);
      const stats = await dump.stop();
      expect(stats.droppedByKernel).toBe(0);
      const theirs = readFrames(stats.file);
      expect(theirs.length).toBeGreaterThanOrEqual(replay.sent);
      const total = () => members[0].frames.length + members[1].frames.length;
      expect(await settleAt(total, theirs.length)).toBe(theirs.length);

      // No frame lost, none delivered twice: the two multisets add up to tcpdump's.
      const both = [...members[0].frames, ...members[1].frames];
      expect(multisetDiff(both, theirs)).toEqual({ onlyA: [], onlyB: [] });
      for (const [i, s] of sources.map((src) => src.stats()).entries()) {
        expect(s.received).toBe(members[i].frames.length);
        expect(s.kernel).toEqual({ packets: members[i].frames.length, drops: 0 });
        expect(s.dropped).toEqual({ kernel: 0, noslot: 0 });
      }
      const [n0, n1] = members.map((m) => m.frames.length);
      if (mode === 'lb') {
        // Round robin: both get their share.
        expect(Math.min(n0, n1)).toBeGreaterThanOrEqual(0.4 * theirs.length);
      }
      if (mode === 'hash') {
        // Many flows: both get some...
        expect(Math.min(n0, n1)).toBeGreaterThan(0);
        // ...and each flow goes to one member only.
        const owner = new Map<string, Set<number>>();
        members.forEach((m, i) => {
          for (const f of m.frames) {
            const k = flowKey(f);
            if (k === null) continue;
            const set = owner.get(k) ?? new Set<number>();
            set.add(i);
            owner.set(k, set);
          }
        });
        expect(owner.size).toBeGreaterThanOrEqual(20);
        const split = [...owner].filter(([, s]) => s.size > 1).map(([k]) => k);
        expect(split).toEqual([]);
        // Both members own flows.
        expect(new Set([...owner.values()].map((s) => [...s][0])).size).toBe(2);
      }
    } finally {
      for (const s of sources) s.close();
    }
    expect(arena.stats.inUse).toBe(0);
  });

  it('a member that leaves the group (close) leaves the whole traffic to the other', async () => {
    const arena = Arena.create({ slotSize: 2048, slotCount: 8192 });
    const group = nextGroup++;
    const members = [collector(arena), collector(arena)];
    const sources = members.map((m) => AfPacketSource.open(lab.a, { arena, onBurst: m.onBurst, fanout: { group, mode: 'lb' }, ...STALL_TOLERANT }));
    try {
      sources[1].close();
      const dump = await lab.tcpdump({ side: 'a', args: ['--time-stamp-precision=nano'] });
      await lab.tcpreplay(samplePath, { pps: 20000 });
      const theirs = readFrames((await dump.stop()).file);
      await settleAt(() => members[0].frames.length, theirs.length);
      expect(members[1].frames).toHaveLength(0);
      expect(multisetDiff(members[0].frames, theirs)).toEqual({ onlyA: [], onlyB: [] });
    } finally {
      for (const s of sources) s.close();
    }
    expect(arena.stats.inUse).toBe(0);
  });

  it('refuses to join a group with another mode, with a NetpdError naming PACKET_FANOUT, and the group keeps working', async () => {
    const arena = Arena.create({ slotSize: 2048, slotCount: 1024 });
    const group = nextGroup++;
    const first = AfPacketSource.open(lab.a, { arena, onBurst: () => {}, fanout: { group, mode: 'hash' } });
    try {
      let err: unknown;
      try {
        AfPacketSource.open(lab.a, { arena, onBurst: () => {}, fanout: { group, mode: 'lb' } }).close();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(NetpdError);
      expect((err as NetpdError).code).toBe('EINVAL');
      expect((err as NetpdError).message).toMatch(/PACKET_FANOUT/);
      expect(first.open).toBe(true);
    } finally {
      first.close();
    }
    expect(arena.stats.inUse).toBe(0);
  });
});
