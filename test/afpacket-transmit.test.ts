// AfPacketSource transmit, on a real link: frames held in arena slots go out of one end
// of a veth pair, and tcpdump on the other end (inside the lab's namespace) must see
// each of them, byte for byte and in order — through source.send(), through the
// `transmit` netio (a dispatcher's default owner here), with sendmmsg and with the
// PACKET_TX_RING, and through `netpd send`. Every slot handed over comes back to the
// arena once sent; frames the link refuses are counted and released too; the netio's
// queue limit and close() lose no slot. Needs root, tcpdump and ping; without them the
// tests skip and say why.
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { AfPacketSource, Arena, Packet, PacketDispatcher, PcapReader } from '../bindings/index.js';
import { createLab, type Lab } from './support/netns.mjs';
import {
  capturePath, collector, etherType, hex, lastJson, liveSkipReason, multisetDiff, readFrames, runCli, samplePath, settleAt, srcMac, waitFor, waitForFile,
  type Frame,
} from './support/live-frames.js';

const reason = liveSkipReason('afpacket-transmit', ['tcpdump', 'ping']);
const NANO = ['--time-stamp-precision=nano'];

/** Reads a whole capture into slots; returns the slot vector and the count. */
function load(arena: Arena, path: string): { vec: Uint32Array; n: number } {
  const reader = PcapReader.open(path, { arena });
  const vec = arena.burstVector(8192);
  let n = 0;
  for (let k; (k = reader.readBurst(vec.subarray(n), Math.min(256, vec.length - n))) > 0;) n += k;
  expect(reader.eof).toBe(true);
  reader.close();
  return { vec, n };
}

/** Sends vec[0..n) with source.send, yielding to the loop while the kernel is busy. */
async function sendAll(source: AfPacketSource, vec: Uint32Array, n: number): Promise<void> {
  let done = 0;
  const deadline = Date.now() + 10_000;
  while (done < n) {
    const k = source.send(vec.subarray(done), n - done);
    done += k;
    if (k === 0) {
      if (Date.now() > deadline) throw new Error(`send made no progress: ${done} of ${n} sent`);
      await new Promise((r) => setImmediate(r));
    }
  }
}

/**
 * What tcpdump on end B saw arrive (only inbound: B's own replies are left out). The
 * snap length keeps libpcap's immediate-mode ring from sizing each of its frames for
 * 256 KiB (it does on links with offloads, as veth has), which leaves room for only
 * 256 frames and drops the rest of a burst sent at full speed.
 */
async function captureOnB(lab: Lab) {
  return lab.tcpdump({ side: 'b', args: [...NANO, '-s', '4096', '-Q', 'in'] });
}

const hexes = (fs: { data: Uint8Array }[]) => fs.map((f) => hex(f.data));

describe.skipIf(reason !== null).each(['mmsg', 'ring'] as const)('AfPacketSource transmit (txMode %s)', (txMode) => {
  let lab: Lab;
  beforeEach(async () => { lab = await createLab('tx', { mtu: 9000 }); });
  afterEach(async () => { await lab?.destroy(); });

  it('source.send puts the bundled sample on the wire byte for byte, in order, and releases every slot', async () => {
    const arena = Arena.create({ slotSize: 2048, slotCount: 4096 });
    const want = readFrames(samplePath);
    const source = AfPacketSource.open(lab.a, { arena, txMode, transmitOnly: true });
    try {
      const dump = await captureOnB(lab);
      const { vec, n } = load(arena, samplePath);
      expect(n).toBe(want.length);
      expect(arena.stats.inUse).toBe(n);
      await sendAll(source, vec, n);
      // Sent frames are the kernel's: the source holds no reference to any of them.
      expect(arena.stats.inUse).toBe(0);
      const s = source.stats();
      expect(s).toMatchObject({ sent: n, sendErrors: 0, transmitDrops: 0 });
      await waitForFile(dump.file, n);
      const stats = await dump.stop();
      expect(stats.droppedByKernel).toBe(0);
      const got = readFrames(stats.file);
      expect(got.length).toBe(n);
      expect(hexes(got)).toEqual(hexes(want));
      expect(got.map((f) => f.wireLen)).toEqual(want.map((f) => f.wireLen));
    } finally {
      source.close();
    }
    expect(arena.stats.inUse).toBe(0);
  });

  it('the transmit netio (a dispatcher\'s default owner, and push()) sends in order, then releases the slots it retained', async () => {
    const arena = Arena.create({ slotSize: 2048, slotCount: 4096 });
    const want = readFrames(capturePath('scapy-ipv4.pcap'));
    const source = AfPacketSource.open(lab.a, { arena, txMode, transmitOnly: true, burstSize: 32 });
    const pd = PacketDispatcher.create({ arena, defaultNetio: source.transmit });
    try {
      const dump = await captureOnB(lab);
      const { vec, n } = load(arena, capturePath('scapy-ipv4.pcap'));
      expect(n).toBe(want.length);
      // The first 100 through the dispatcher (pushBatch), in bursts; then the rest one by one (push).
      for (let at = 0; at < 100; at += 25) pd.dispatchBurst(vec.subarray(at), 25);
      const one = new Packet(arena);
      for (let i = 100; i < n; i++) { one.slot = vec[i]; source.transmit.push!(one); }
      // The loader's references go; the netio keeps its own until the frames are sent.
      arena.freeBurst(vec, n);
      expect(await waitFor(() => source.stats().sent === n, 5000)).toBe(true);
      expect(source.flush()).toBe(0);
      expect(arena.stats.inUse).toBe(0);
      expect(source.stats()).toMatchObject({ sent: n, sendErrors: 0, transmitDrops: 0 });
      await waitForFile(dump.file, n);
      const stats = await dump.stop();
      expect(stats.droppedByKernel).toBe(0);
      expect(hexes(readFrames(stats.file))).toEqual(hexes(want));
    } finally {
      source.close();
    }
    expect(arena.stats.inUse).toBe(0);
  });

  it('counts frames the link refuses (longer than the MTU, shorter than an Ethernet header) as sendErrors, sends the rest in order, and releases them all', async () => {
    // A lab at the usual 1500-byte MTU: 2 of the sample's frames are 1534 bytes, and
    // scapy-runts.pcap has 9 frames of 0..13 bytes.
    const small = await createLab('txmtu');
    const arena = Arena.create({ slotSize: 2048, slotCount: 4096 });
    const want = [...readFrames(samplePath), ...readFrames(capturePath('scapy-runts.pcap'))];
    const fits = want.filter((f) => f.data.length >= 14 && f.data.length <= 1514);
    expect(want.length - fits.length).toBe(11);
    // The link takes 802.1Q/802.1ad frames cut inside their tag, but the receiving end
    // drops them when it takes the tag off (skb_vlan_untag needs 20 bytes).
    const arrive = fits.filter((f) => !([0x8100, 0x88a8].includes(etherType(f)) && f.data.length < 20));
    expect(fits.length - arrive.length).toBe(9);
    const source = AfPacketSource.open(small.a, { arena, txMode, transmitOnly: true });
    try {
      const dump = await captureOnB(small);
      const a = load(arena, samplePath);
      const b = load(arena, capturePath('scapy-runts.pcap'));
      const vec = arena.burstVector(a.n + b.n);
      vec.set(a.vec.subarray(0, a.n));
      vec.set(b.vec.subarray(0, b.n), a.n);
      await sendAll(source, vec, a.n + b.n);
      expect(arena.stats.inUse).toBe(0);
      await waitForFile(dump.file, arrive.length);
      const stats = await dump.stop();
      expect(stats.droppedByKernel).toBe(0);
      expect(hexes(readFrames(stats.file))).toEqual(hexes(arrive));
      // Fails with txMode 'ring' (a bug in addon/tx.cc and socket.cc, not here): the TX
      // ring is set up with PACKET_LOSS, so the kernel silently skips a frame it refuses
      // and sendRing() has already reported it as sent: sent is 3057, sendErrors 0.
      expect(source.stats(), 'frames the link refused must be counted in sendErrors, not in sent').toMatchObject({ sent: fits.length, sendErrors: 11 });
    } finally {
      source.close();
      await small.destroy();
    }
  });

  it('the transmit netio drops (and does not retain) what its queue cannot hold', async () => {
    const arena = Arena.create({ slotSize: 2048, slotCount: 1024 });
    const source = AfPacketSource.open(lab.a, { arena, txMode, transmitOnly: true, transmitQueue: 8 });
    try {
      const dump = await captureOnB(lab);
      const { vec, n } = load(arena, capturePath('scapy-l2.pcap'));
      const one = new Packet(arena);
      // 20 pushed in one go: the queue takes 8 until the loop comes round to send them.
      for (let i = 0; i < 20; i++) { one.slot = vec[i]; source.transmit.push!(one); }
      expect(source.stats().transmitDrops).toBe(12);
      arena.freeBurst(vec, n);
      expect(await waitFor(() => source.stats().sent === 8, 5000)).toBe(true);
      expect(arena.stats.inUse).toBe(0);
      await waitForFile(dump.file, 8);
      const got = readFrames((await dump.stop()).file);
      expect(hexes(got)).toEqual(hexes(readFrames(capturePath('scapy-l2.pcap')).slice(0, 8)));
    } finally {
      source.close();
    }
  });

  it('close() sends what the transmit netio still holds, or counts it as dropped, and leaves no slot behind', async () => {
    const arena = Arena.create({ slotSize: 2048, slotCount: 1024 });
    const source = AfPacketSource.open(lab.a, { arena, txMode, transmitOnly: true });
    let closes = 0;
    source.on('close', () => { closes++; });
    const dump = await captureOnB(lab);
    const { vec, n } = load(arena, capturePath('scapy-l2.pcap'));
    const one = new Packet(arena);
    for (let i = 0; i < 50; i++) { one.slot = vec[i]; source.transmit.push!(one); }
    arena.freeBurst(vec, n);
    source.close();
    expect(closes).toBe(1);
    const s = source.stats();
    expect(s.sent + s.transmitDrops).toBe(50);
    expect(arena.stats.inUse).toBe(0);
    await waitForFile(dump.file, s.sent);
    const got = readFrames((await dump.stop()).file);
    expect(hexes(got)).toEqual(hexes(readFrames(capturePath('scapy-l2.pcap')).slice(0, s.sent)));
    // A closed source's netio takes nothing.
    one.slot = 0;
    source.transmit.push!(one);
    expect(source.stats().transmitDrops).toBe(s.transmitDrops + 1);
    expect(arena.stats.inUse).toBe(0);
  });
});

describe.skipIf(reason !== null)('AfPacketSource transmit and receive on one interface', () => {
  let lab: Lab;
  beforeEach(async () => { lab = await createLab('txrx', { mtu: 9000 }); });
  afterEach(async () => { await lab?.destroy(); });

  it('a receiving source sees what is sent from its interface with direction "inout", not with "in"', async () => {
    const arena = Arena.create({ slotSize: 2048, slotCount: 4096 });
    const inout = collector(arena);
    const inOnly = collector(arena);
    const rxAll = AfPacketSource.open(lab.a, { arena, onBurst: inout.onBurst });
    const rxIn = AfPacketSource.open(lab.a, { arena, onBurst: inOnly.onBurst, direction: 'in' });
    const tx = AfPacketSource.open(lab.a, { arena, transmitOnly: true });
    try {
      const want = readFrames(capturePath('scapy-l2.pcap'));
      const { vec, n } = load(arena, capturePath('scapy-l2.pcap'));
      await sendAll(tx, vec, n);
      expect((await lab.ping(3)).received).toBe(3);
      // 130 frames sent, 3 echo replies out and 3 requests in (plus ARP both ways).
      await settleAt(() => inout.frames.length, n + 6);
      // What this host sent comes first, in order, to the "inout" source only.
      expect(hexes(inout.frames.slice(0, n))).toEqual(hexes(want));
      expect(inOnly.frames.length).toBeGreaterThanOrEqual(4);
      expect(inOnly.frames.every((f: Frame) => srcMac(f) === lab.macB)).toBe(true);
      // After that, both saw the same frames arrive; "inout" also saw A's replies.
      const rest = inout.frames.slice(n);
      expect(multisetDiff(rest.filter((f) => srcMac(f) !== lab.macA), inOnly.frames)).toEqual({ onlyA: [], onlyB: [] });
      expect(rest.filter((f) => srcMac(f) === lab.macA).length).toBeGreaterThanOrEqual(4);
    } finally {
      rxAll.close();
      rxIn.close();
      tx.close();
    }
    expect(arena.stats.inUse).toBe(0);
  });
});

describe.skipIf(reason !== null)('netpd send', () => {
  let lab: Lab;
  beforeEach(async () => { lab = await createLab('send', { mtu: 9000 }); });
  afterEach(async () => { await lab?.destroy(); });

  interface SendReport { sent: number; bytes: number; seconds: number; pps: number; errors: number }

  it('replays the bundled sample byte for byte, in order, and reports what it sent', async () => {
    const want = readFrames(samplePath);
    const dump = await captureOnB(lab);
    const r = await runCli(['send', '-i', lab.a, '-r', samplePath, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const report = lastJson<SendReport>(r.stdout);
    await waitForFile(dump.file, want.length);
    const stats = await dump.stop();
    expect(stats.droppedByKernel).toBe(0);
    expect(hexes(readFrames(stats.file))).toEqual(hexes(want));
    expect(report).toMatchObject({ sent: want.length, errors: 0, bytes: want.reduce((b, f) => b + f.data.length, 0) });
    expect(report.seconds).toBeGreaterThan(0);
    // (seconds is rounded to the microsecond, so pps need not come out exactly from it)
    expect(Math.abs(report.pps - report.sent / report.seconds)).toBeLessThanOrEqual(1 + report.pps * 1e-3);
  });

  it('--loop N sends the file N times; --pps paces it', async () => {
    const want = readFrames(capturePath('scapy-l2.pcap'));
    const dump = await captureOnB(lab);
    const r = await runCli(['send', '-i', lab.a, '-r', capturePath('scapy-l2.pcap'), '--loop', '3', '--pps', '4000', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const report = lastJson<SendReport>(r.stdout);
    await waitForFile(dump.file, 3 * want.length);
    const stats = await dump.stop();
    expect(stats.droppedByKernel).toBe(0);
    const got = readFrames(stats.file);
    expect(hexes(got)).toEqual(hexes([...want, ...want, ...want]));
    expect(report).toMatchObject({ sent: 3 * want.length, errors: 0 });
    // Paced: it cannot have gone much faster than asked (a lower bound only; speed is
    // for the benchmarks).
    expect(report.seconds).toBeGreaterThanOrEqual((0.8 * (3 * want.length - 1)) / 4000);
  });

  it('counts frames longer than the MTU as errors', async () => {
    const small = await createLab('sendm');
    try {
      const want = readFrames(samplePath);
      const dump = await captureOnB(small);
      const r = await runCli(['send', '-i', small.a, '-r', samplePath, '--json']);
      expect(r.code, r.stderr).toBe(0);
      const report = lastJson<SendReport>(r.stdout);
      await waitForFile(dump.file, want.length - 2);
      const stats = await dump.stop();
      // bytes counts what went out: not the two refused frames.
      const fits = want.filter((f) => f.data.length <= 1514);
      expect(fits).toHaveLength(want.length - 2);
      expect(report).toMatchObject({ sent: want.length - 2, errors: 2, bytes: fits.reduce((b, f) => b + f.data.length, 0) });
      expect(stats.droppedByKernel).toBe(0);
      expect(stats.captured).toBe(want.length - 2);
    } finally {
      await small.destroy();
    }
  });

  it('fails with ENODEV for an unknown interface', async () => {
    const r = await runCli(['send', '-i', 'netpd-nonesuch', '-r', samplePath]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/ENODEV/);
  });
});
