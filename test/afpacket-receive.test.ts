// AfPacketSource receive, on a real link: a veth pair whose far end (in its own network
// namespace) is driven by the kernel (ping, arping) and by tcpreplay, while tcpdump
// captures the same near end at the same time. What netpd puts in the arena must be
// what tcpdump (libpcap) writes: the same frames, byte for byte (VLAN tags put back),
// the same lengths, timestamps from the same kernel clock, and the same count. Both
// receive modes (TPACKET_V3 ring, recvmmsg) are held to that. Also: cutting to the snap
// length and to the slot size (as tcpdump -s), riding out a stalled event loop, the
// kernel filter (only what it accepts reaches user space, and the kernel's counter says
// so; "vlan" as libpcap runs it live), delivery to a dispatcher, and `netpd run -i`.
// Needs root, tcpdump, tcpreplay, ping and Habets' arping; without them the tests skip
// and say why.
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { AfPacketSource, Arena, PacketDispatcher, SLOT_TRUNCATED } from '../bindings/index.js';
import { createLab, type Capture, type CaptureStats, type Lab } from './support/netns.mjs';
import {
  capturePath, cliPath, collector, etherType, lastJson, liveSkipReason, multisetDiff, nsDiff, pairByBytes, readFrames,
  root, samplePath, settleAt, srcMac, STALL_TOLERANT, waitFor, type Frame,
} from './support/live-frames.js';

const reason = liveSkipReason('afpacket-receive', ['tcpdump', 'tcpreplay', 'ping', 'arping']);
const NANO = ['--time-stamp-precision=nano'];
// tcpdump's and netpd's sockets see the same skb, so a frame's two timestamps come from
// the same kernel stamp (they are equal here, in both modes); allow a little in case a
// kernel stamps a path late, still far less than the gaps between the frames.
const TS_SLACK_NS = 2e6;

/** A source collecting copies of what it receives, and tcpdump on the same end. */
async function listen(lab: Lab, rxMode: 'ring' | 'mmsg', opts: { filter?: string; tcpdumpArgs?: string[] } = {}) {
  const arena = Arena.create({ slotSize: 2048, slotCount: 4096 });
  const got = collector(arena);
  const source = AfPacketSource.open(lab.a, { arena, rxMode, onBurst: got.onBurst, filter: opts.filter, ...STALL_TOLERANT });
  const errors: Error[] = [];
  source.on('error', (e: Error) => errors.push(e));
  const dump = await lab.tcpdump({ side: 'a', args: [...NANO, ...(opts.tcpdumpArgs ?? [])] });
  return { arena, source, frames: got.frames, errors, dump };
}

/**
 * Stops tcpdump, waits for netpd to reach its count (and a little more, to see that
 * nothing extra comes), and returns both sides' frames.
 */
async function finish(l: Awaited<ReturnType<typeof listen>>): Promise<{ theirs: Frame[]; ours: Frame[]; stats: CaptureStats }> {
  const stats = await l.dump.stop();
  const theirs = readFrames(stats.file);
  await settleAt(() => l.frames.length, theirs.length);
  return { theirs, ours: l.frames, stats };
}

/** Everything the two sides must agree on, whatever the traffic. */
function expectSameAsTcpdump(lab: Lab, l: Awaited<ReturnType<typeof listen>>, r: Awaited<ReturnType<typeof finish>>) {
  const { theirs, ours, stats } = r;
  expect(stats.droppedByKernel, 'tcpdump dropped frames: the comparison means nothing').toBe(0);
  expect(l.errors).toEqual([]);
  const s = l.source.stats();
  expect(s.dropped).toEqual({ kernel: 0, noslot: 0 });
  // Same multiset of frames...
  expect(multisetDiff(ours, theirs)).toEqual({ onlyA: [], onlyB: [] });
  expect(ours.length).toBe(theirs.length);
  expect(s.received).toBe(ours.length);
  expect(s.kernel.packets).toBe(ours.length);
  expect(s.bytes).toBe(theirs.reduce((b, f) => b + f.wireLen, 0));
  // ...in the same order, where one sender's frames are concerned (frames leaving A and
  // frames arriving at A may interleave differently for two sockets on two CPUs).
  const arriving = (fs: Frame[]) => fs.filter((f) => srcMac(f) !== lab.macA).map((f) => f.data.toString('hex'));
  expect(arriving(ours)).toEqual(arriving(theirs));
  // Lengths and timestamps of each frame as tcpdump has them.
  for (const [mine, tcpd] of pairByBytes(ours, theirs)) {
    expect(mine.capLen).toBe(tcpd.capLen);
    expect(mine.data.length).toBe(tcpd.capLen);
    expect(mine.wireLen).toBe(tcpd.wireLen);
    expect(mine.ifIndex).toBe(lab.ifindexA);
    expect(mine.flags & SLOT_TRUNCATED).toBe(0);
    expect(Math.abs(nsDiff(mine, tcpd))).toBeLessThanOrEqual(TS_SLACK_NS);
  }
}

describe.skipIf(reason !== null).each(['ring', 'mmsg'] as const)('AfPacketSource receive (rxMode %s)', (rxMode) => {
  let lab: Lab;
  beforeEach(async () => { lab = await createLab('rx', { mtu: 9000 }); });
  afterEach(async () => { await lab?.destroy(); });

  it('receives what the kernel sends (ping, arping) as tcpdump does: bytes, lengths, timestamps, count', async () => {
    const l = await listen(lab, rxMode);
    try {
      const ping = await lab.ping(20);
      expect(ping.received, ping.stdout + ping.stderr).toBe(20);
      const arping = await lab.arping(10);
      expect(arping.received, arping.stdout + arping.stderr).toBe(10);
      const ping2 = await lab.ping(5, { from: 'a', size: 1400 });
      expect(ping2.received).toBe(5);
      const r = await finish(l);
      // 50 ICMP, 20 ARP from arping, the ARP exchange before the first pings.
      expect(r.theirs.length).toBeGreaterThanOrEqual(70);
      expectSameAsTcpdump(lab, l, r);
      // Timestamps are the kernel's wall clock.
      const now = Date.now() / 1000;
      for (const f of r.ours) expect(Math.abs(f.sec - now)).toBeLessThan(60);
    } finally {
      l.source.close();
    }
    expect(l.arena.stats.inUse).toBe(0);
  });

  it('receives a tcpreplay of the bundled sample (2924 frames up to 1534 bytes) with none lost or changed', async () => {
    const sent = readFrames(samplePath);
    const l = await listen(lab, rxMode);
    try {
      const replay = await lab.tcpreplay(samplePath, { pps: 20000 });
      expect(replay.failed).toBe(0);
      expect(replay.sent).toBe(sent.length);
      const r = await finish(l);
      expectSameAsTcpdump(lab, l, r);
      // tcpreplay puts the file's frames on the wire unchanged; all of them arrive.
      const arriving = r.ours.filter((f) => srcMac(f) !== lab.macA);
      expect(multisetDiff(arriving, sent)).toEqual({ onlyA: [], onlyB: [] });
      expect(arriving.map((f) => f.wireLen)).toEqual(sent.map((f) => f.wireLen));
    } finally {
      l.source.close();
    }
    expect(l.arena.stats.inUse).toBe(0);
  });

  it('puts back VLAN tags (802.1Q, 802.1ad, QinQ) the kernel takes off, exactly as tcpdump shows them', async () => {
    // scapy-l2.pcap: 802.1Q, QinQ with 0x88a8 / 0x8100 / 0x9100 outer tags, triple tags.
    const sent = readFrames(capturePath('scapy-l2.pcap'));
    const tagged = sent.filter((f) => [0x8100, 0x88a8, 0x9100].includes(etherType(f)));
    expect(tagged.length).toBeGreaterThanOrEqual(8);
    const l = await listen(lab, rxMode);
    try {
      const replay = await lab.tcpreplay(capturePath('scapy-l2.pcap'), { pps: 5000 });
      expect(replay.failed).toBe(0);
      const r = await finish(l);
      expectSameAsTcpdump(lab, l, r);
      const arriving = r.ours.filter((f) => srcMac(f) !== lab.macA);
      expect(arriving.map((f) => f.data.toString('hex'))).toEqual(sent.map((f) => f.data.toString('hex')));
      // The tagged frames in particular, with their tags where they were on the wire.
      const ourTagged = arriving.filter((f) => [0x8100, 0x88a8, 0x9100].includes(etherType(f)));
      expect(ourTagged.map((f) => f.data.toString('hex'))).toEqual(tagged.map((f) => f.data.toString('hex')));
      expect(ourTagged.map((f) => f.wireLen)).toEqual(tagged.map((f) => f.wireLen));
    } finally {
      l.source.close();
    }
  });

  it('rides out a 300 ms stall of the event loop at 20 kpps with its default buffer (32 MiB) and no kernel drop', async () => {
    // The replay is ~0.35 MB in 0.15 s: far less than the buffer holds, so nothing may
    // be lost however long the loop is away, as long as the buffer is not full. In ring
    // mode each block is handed over after blockTimeoutMs (2 ms) however little it
    // holds, so it is the number of blocks (256 of 128 KiB), not their bytes, that has
    // to outlast the stall.
    const arena = Arena.create({ slotSize: 2048, slotCount: 4096 });
    const got = collector(arena);
    const source = AfPacketSource.open(lab.a, { arena, rxMode, onBurst: got.onBurst });
    try {
      const dump = await lab.tcpdump({ side: 'a', args: [...NANO, '-s', '4096'] });
      const replay = lab.tcpreplay(samplePath, { pps: 20000 });
      expect(await waitFor(() => got.frames.length >= 50, 5000)).toBe(true);
      const until = Date.now() + 300;
      while (Date.now() < until) { /* the event loop is stuck here, as under a long GC or a busy callback */ }
      expect((await replay).failed).toBe(0);
      const stats = await dump.stop();
      expect(stats.droppedByKernel).toBe(0);
      const theirs = readFrames(stats.file);
      await settleAt(() => got.frames.length, theirs.length, 2000);
      expect(source.stats().dropped, `${theirs.length} frames in 0.15 s, ${source.stats().received} received`).toEqual({ kernel: 0, noslot: 0 });
      expect(multisetDiff(got.frames, theirs)).toEqual({ onlyA: [], onlyB: [] });
    } finally {
      source.close();
    }
  });

  it('runs the kernel filter: with filter "arp" only ARP reaches user space, and the kernel counts only ARP', async () => {
    const arena = Arena.create({ slotSize: 2048, slotCount: 1024 });
    const got = collector(arena);
    const source = AfPacketSource.open(lab.a, { arena, rxMode, onBurst: got.onBurst, filter: 'arp' });
    let arpDump: Capture | undefined;
    let allDump: Capture | undefined;
    try {
      arpDump = await lab.tcpdump({ side: 'a', args: [...NANO, 'arp'] });
      allDump = await lab.tcpdump({ side: 'a', args: NANO });
      expect((await lab.ping(20)).received).toBe(20);
      expect((await lab.arping(8)).received).toBe(8);
      expect((await lab.ping(10, { from: 'a' })).received).toBe(10);
      const arpStats = await arpDump.stop();
      const allStats = await allDump.stop();
      const arp = readFrames(arpStats.file);
      const all = readFrames(allStats.file);
      expect(arp.length).toBeGreaterThanOrEqual(16);
      expect(all.length).toBeGreaterThanOrEqual(arp.length + 60);
      await settleAt(() => got.frames.length, arp.length);
      expect(got.frames.every((f) => etherType(f) === 0x0806)).toBe(true);
      expect(multisetDiff(got.frames, arp)).toEqual({ onlyA: [], onlyB: [] });
      const s = source.stats();
      expect(s.received).toBe(arp.length);
      expect(s.kernel).toEqual({ packets: arp.length, drops: 0 });
    } finally {
      source.close();
    }
  });

  it('cuts frames to the snap length and to the slot size as tcpdump -s does (tags included), with and without a kernel filter', async () => {
    const big = Arena.create({ slotSize: 2048, slotCount: 4096 });
    const small = Arena.create({ slotSize: 256, slotCount: 4096 });
    const cases = [
      { name: 'snaplen 64', arena: big, snaplen: 64, filter: undefined, tcpdump: ['-s', '64'] },
      { name: 'slot 256', arena: small, snaplen: undefined, filter: undefined, tcpdump: ['-s', '256'] },
      { name: 'snaplen 100, filter', arena: big, snaplen: 100, filter: 'ip or arp', tcpdump: ['-s', '100', 'ip or arp'] },
    ];
    const runs = await Promise.all(cases.map(async (c) => {
      const got = collector(c.arena);
      const source = AfPacketSource.open(lab.a, { arena: c.arena, rxMode, onBurst: got.onBurst, snaplen: c.snaplen, filter: c.filter, ...STALL_TOLERANT });
      return { ...c, got, source, dump: await lab.tcpdump({ side: 'a', args: [...NANO, ...c.tcpdump] }) };
    }));
    try {
      expect((await lab.tcpreplay(samplePath, { pps: 20000 })).failed).toBe(0);
      expect((await lab.ping(5, { size: 1400 })).received).toBe(5);
      for (const r of runs) {
        const stats = await r.dump.stop();
        expect(stats.droppedByKernel).toBe(0);
        const theirs = readFrames(stats.file);
        await settleAt(() => r.got.frames.length, theirs.length);
        const ours = r.got.frames;
        const diff = multisetDiff(ours, theirs);
        expect({ count: ours.length, onlyNetpd: diff.onlyA.length, onlyTcpdump: diff.onlyB.length }, `${r.name}: ${JSON.stringify(r.source.stats())}`)
          .toEqual({ count: theirs.length, onlyNetpd: 0, onlyTcpdump: 0 });
        // Frame by frame where the order is one sender's, with the lengths tcpdump has.
        const arriving = (fs: Frame[]) => fs.filter((f) => srcMac(f) !== lab.macA);
        const [a, b] = [arriving(ours), arriving(theirs)];
        expect(a.map((f) => f.data.toString('hex')), r.name).toEqual(b.map((f) => f.data.toString('hex')));
        expect(a.map((f) => [f.capLen, f.wireLen]), r.name).toEqual(b.map((f) => [f.capLen, f.wireLen]));
      }
      // Cut to the slot: flagged and counted, as the file readers do.
      const cut = runs[1].got.frames.filter((f) => f.wireLen > 256);
      expect(cut.length).toBeGreaterThan(100);
      expect(runs[1].got.frames.filter((f) => f.flags & SLOT_TRUNCATED)).toEqual(cut);
      expect(small.stats.truncated).toBe(cut.length);
      // Cut to the snap length: not a truncation to the slot.
      expect(runs[0].got.frames.every((f) => (f.flags & SLOT_TRUNCATED) === 0)).toBe(true);
      expect(big.stats.truncated).toBe(0);
    } finally {
      for (const r of runs) r.source.close();
    }
    expect(big.stats.inUse + small.stats.inUse).toBe(0);
  });

  it('runs a "vlan" kernel filter as tcpdump does on a live interface, where the kernel has taken the tags off', async () => {
    const arena = Arena.create({ slotSize: 2048, slotCount: 1024 });
    const exprs = ['vlan', 'vlan 100', 'not vlan'];
    const runs = await Promise.all(exprs.map(async (filter) => {
      const got = collector(arena);
      const source = AfPacketSource.open(lab.a, { arena, rxMode, onBurst: got.onBurst, filter, ...STALL_TOLERANT });
      return { filter, got, source, dump: await lab.tcpdump({ side: 'a', args: [...NANO, filter] }) };
    }));
    try {
      expect((await lab.tcpreplay(capturePath('scapy-l2.pcap'), { pps: 5000 })).failed).toBe(0);
      expect((await lab.tcpreplay(samplePath, { pps: 20000 })).failed).toBe(0);
      const diffs: Record<string, { netpd: number; tcpdump: number; onlyNetpd: number; onlyTcpdump: number }> = {};
      for (const r of runs) {
        const stats = await r.dump.stop();
        const theirs = readFrames(stats.file);
        await settleAt(() => r.got.frames.length, theirs.length, 1000);
        const d = multisetDiff(r.got.frames, theirs);
        diffs[r.filter] = { netpd: r.got.frames.length, tcpdump: theirs.length, onlyNetpd: d.onlyA.length, onlyTcpdump: d.onlyB.length };
      }
      expect(diffs.vlan.tcpdump).toBeGreaterThanOrEqual(20);
      // A live socket's filter runs on the frame after the kernel took the tag off (it
      // is in the skb's metadata): the kernel filter is libpcap's live code, which tests
      // the metadata first (ld vlanp / ld vlan_tci, the SKF_AD_VLAN_TAG* loads).
      for (const [filter, d] of Object.entries(diffs)) {
        expect(d, `filter "${filter}": netpd's kernel filter vs tcpdump's (${JSON.stringify(diffs)})`).toMatchObject({ netpd: d.tcpdump, onlyNetpd: 0, onlyTcpdump: 0 });
      }
    } finally {
      for (const r of runs) r.source.close();
    }
  });

  it('hands bursts to a dispatcher: owners get their share, and the dispatcher counts every frame', async () => {
    const arena = Arena.create({ slotSize: 2048, slotCount: 1024 });
    const seen = { icmp: 0, other: 0 };
    const pd = PacketDispatcher.create({ arena, defaultNetio: () => { seen.other++; } });
    pd.register('icmp', () => { seen.icmp++; }, { name: 'icmp' });
    const source = AfPacketSource.open(lab.a, { dispatcher: pd, rxMode });
    try {
      const dump = await lab.tcpdump({ side: 'a', args: NANO });
      expect((await lab.ping(15)).received).toBe(15);
      expect((await lab.arping(5)).received).toBe(5);
      const stats = await dump.stop();
      const theirs = readFrames(stats.file);
      await settleAt(() => seen.icmp + seen.other, theirs.length);
      const icmp = theirs.filter((f) => etherType(f) === 0x0800 && f.data[23] === 1).length;
      expect(icmp).toBe(30);
      expect(seen).toEqual({ icmp, other: theirs.length - icmp });
      const d = pd.stats();
      expect(d.in).toBe(theirs.length);
      expect(d.delivered).toBe(theirs.length);
      expect(d.dropped.noslot).toBe(0);
      expect(d.dropped.kernel).toBe(0);
      expect(source.stats().received).toBe(theirs.length);
    } finally {
      source.close();
    }
    expect(arena.stats.inUse).toBe(0);
  });
});

describe.skipIf(reason !== null)('netpd run -i (live)', () => {
  let lab: Lab;
  beforeEach(async () => { lab = await createLab('run'); });
  afterEach(async () => { await lab?.destroy(); });

  /** Starts `netpd run ARGS`, resolving once it says it is listening. */
  function startRun(args: string[]) {
    const child = spawn(process.execPath, [cliPath, 'run', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
    const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    exited.then(() => clearTimeout(killer));
    const listening = new Promise<void>((resolve, reject) => {
      child.stderr.setEncoding('utf8').on('data', (d) => {
        stderr += d;
        if (stderr.includes('listening on')) resolve();
      });
      exited.then((r) => reject(new Error(`netpd run exited (${r.code ?? r.signal}) before listening: ${stderr}`)));
    });
    return { child, listening, exited, out: () => stdout, err: () => stderr };
  }

  interface LiveReport {
    packets: number; bytes: number; owners: Record<string, { packets: number; bytes: number }>;
    default: { packets: number; bytes: number }; drops: Record<string, number>; kernel: { packets: number; drops: number };
  }

  it('stops at -c COUNT with the kernel filter given as a trailing expression, and -w writes what it received', async () => {
    const out = join(lab.tmpdir(), 'run.pcap');
    const run = startRun(['-i', lab.a, '-c', '20', '--json', '-w', out, '--rule', 'req=icmp[icmptype] = icmp-echo', 'icmp']);
    await run.listening;
    const dump = await lab.tcpdump({ side: 'a', args: [...NANO, 'icmp'] });
    const ping = await lab.ping(10);
    expect(ping.received).toBe(10);
    const { code } = await run.exited;
    expect(code, run.err()).toBe(0);
    const theirs = readFrames((await dump.stop()).file);
    expect(theirs).toHaveLength(20);
    const report = lastJson<LiveReport>(run.out());
    expect(report.packets).toBe(20);
    expect(report.bytes).toBe(theirs.reduce((b, f) => b + f.wireLen, 0));
    expect(report.owners.req.packets).toBe(10);
    expect(report.default.packets).toBe(10);
    expect(report.kernel.drops).toBe(0);
    // The kernel filter kept the ARP exchange out.
    expect(report.kernel.packets).toBe(20);
    const written = readFrames(out);
    expect(written.map((f) => f.data.toString('hex'))).toEqual(theirs.map((f) => f.data.toString('hex')));
    expect(written.map((f) => f.wireLen)).toEqual(theirs.map((f) => f.wireLen));
    for (const [w, t] of pairByBytes(written, theirs)) expect(Math.abs(nsDiff(w, t))).toBeLessThanOrEqual(TS_SLACK_NS);
  });

  it('stops on SIGINT and prints its final counters, which match tcpdump', async () => {
    const run = startRun(['-i', lab.a, '--json', '--rule', 'arp=arp']);
    await run.listening;
    const dump = await lab.tcpdump({ side: 'a', args: NANO });
    expect((await lab.arping(6)).received).toBe(6);
    expect((await lab.ping(4)).received).toBe(4);
    const theirs = readFrames((await dump.stop()).file);
    const arp = theirs.filter((f) => etherType(f) === 0x0806).length;
    await new Promise((r) => setTimeout(r, 100)); // frames still in netpd's ring (2 ms block timeout)
    run.child.kill('SIGINT');
    const { code } = await run.exited;
    expect(code, run.err()).toBe(0);
    const report = lastJson<LiveReport>(run.out());
    expect(report.packets).toBe(theirs.length);
    expect(report.owners.arp.packets).toBe(arp);
    expect(report.default.packets).toBe(theirs.length - arp);
    expect(report.kernel).toEqual({ packets: theirs.length, drops: 0 });
  });
});
