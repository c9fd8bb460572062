// AfPacketSource as a Node user meets it, on real links: `for await` over bursts
// (slots returned, loop end closes the source, abort is Node's AbortError, a lost
// interface is thrown by the loop), 'error' before 'close', setFilter swapping the
// kernel filter under a steady stream of two kinds of frames without losing one,
// interfaces() against `ip -o link` and `tcpdump -D`, and the "any" device against
// `tcpdump -i any -y LINUX_SLL` (with -Q in/out) on the same traffic. Needs root, ip,
// tcpdump, ping and python3 (which sends paced frames from B); skips saying why without them.
import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AfPacketSource, Arena, NetpdError, PacketDispatcher, type Packet } from '../bindings/index.js';
import { createLab, type Lab } from './support/netns.mjs';
import { copySlot, hex, liveSkipReason, readFrames, waitFor, type Frame } from './support/live-frames.js';

const reason = liveSkipReason('afpacket-api', ['tcpdump', 'ping', 'ip', '/usr/bin/python3']);

// Sends the frames of a file (one hex frame a line) out of an interface at `pps`, paced
// on the clock, from a packet socket; prints how many it sent.
const SENDER = `
import socket, sys, time
iface, path, pps = sys.argv[1], sys.argv[2], float(sys.argv[3])
frames = [bytes.fromhex(l) for l in open(path).read().split()]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((iface, 0))
start = time.perf_counter()
for i, f in enumerate(frames):
    while time.perf_counter() < start + i / pps:
        pass
    s.send(f)
print(len(frames))
`;

/** Sends `frames` out of B's end at `pps`; resolves with how many went. */
async function send(lab: Lab, frames: Uint8Array[], pps: number): Promise<number> {
  const file = join(lab.tmpdir(), `frames-${Date.now()}.hex`);
  writeFileSync(file, frames.map((f) => Buffer.from(f).toString('hex')).join('\n'));
  const r = await lab.exec('/usr/bin/python3', ['-c', SENDER, lab.b, file, String(pps)], { ns: true });
  if (r.code !== 0) throw new Error(`sending from ${lab.b} failed: ${r.stderr}`);
  return Number(r.stdout.trim());
}

const macBytes = (mac: string) => mac.split(':').map((x) => parseInt(x, 16));

/** An Ethernet/IPv4/UDP frame from B to A, destination port `port`, carrying `seq`. */
function udpFrame(lab: Lab, port: number, seq: number): Uint8Array {
  const f = Buffer.alloc(14 + 20 + 8 + 8);
  f.set(macBytes(lab.macA), 0);
  f.set(macBytes(lab.macB), 6);
  f.writeUInt16BE(0x0800, 12);
  f.writeUInt8(0x45, 14);
  f.writeUInt16BE(20 + 8 + 8, 16);
  f.writeUInt8(64, 22);
  f.writeUInt8(17, 23);
  f.set(lab.addrB.split('.').map(Number), 26);
  f.set(lab.addrA.split('.').map(Number), 30);
  let sum = 0;
  for (let i = 14; i < 34; i += 2) sum += f.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  f.writeUInt16BE(~sum & 0xffff, 24);
  f.writeUInt16BE(40000, 34);
  f.writeUInt16BE(port, 36);
  f.writeUInt16BE(16, 38);
  f.writeUInt32BE(seq, 42);
  return f;
}

describe.skipIf(reason !== null)('for await over an AfPacketSource', () => {
  let lab: Lab;
  beforeEach(async () => { lab = await createLab('iter'); });
  afterEach(async () => { await lab?.destroy(); });

  it.each(['ring', 'mmsg'] as const)('(%s) yields the frames in reused batches, keeps retained ones, and closes when the loop breaks', async (rxMode) => {
    const arena = Arena.create({ slotSize: 2048, slotCount: 512 });
    const source = AfPacketSource.open(lab.a, { arena, rxMode, filter: 'icmp' });
    expect(source.linkType).toBe(1);
    let closes = 0;
    source.on('close', () => { closes++; });
    const ping = lab.ping(20, { intervalS: 0.01 });
    const kept: Packet[] = [];
    let seen = 0;
    for await (const batch of source) {
      expect(arena.stats.inUse).toBeGreaterThanOrEqual(batch.length);
      for (const p of batch) {
        seen++;
        if (kept.length < 5) kept.push(p.retain());
      }
      if (seen >= 30) break;
    }
    expect((await ping).received).toBe(20);
    expect(seen).toBeGreaterThanOrEqual(30);
    expect(source.open).toBe(false);
    expect(closes).toBe(1);
    expect(kept.every((p) => p.u16(12) === 0x0800 && p.u8(23) === 1)).toBe(true);
    expect(arena.stats.inUse).toBe(5);
    kept.forEach((p) => p.release());
    expect(arena.stats.inUse).toBe(0);
  });

  it('ends with AbortError when its signal is aborted while it waits, and gives every slot back', async () => {
    const arena = Arena.create({ slotSize: 2048, slotCount: 256 });
    const controller = new AbortController();
    const source = AfPacketSource.open(lab.a, { arena, signal: controller.signal });
    setTimeout(() => controller.abort(), 100);
    let err: unknown;
    try {
      for await (const batch of source) void batch;
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ name: 'AbortError', code: 'ABORT_ERR' });
    expect(source.open).toBe(false);
    expect(arena.stats.inUse).toBe(0);
  });

  it('throws ENETDOWN out of the loop when the interface is deleted, and emits close', async () => {
    const arena = Arena.create({ slotSize: 2048, slotCount: 256 });
    const source = AfPacketSource.open(lab.a, { arena });
    const events: string[] = [];
    source.on('close', () => events.push('close'));
    setTimeout(() => void lab.removeLink(), 100);
    let err: unknown;
    try {
      for await (const batch of source) void batch;
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NetpdError);
    expect((err as NetpdError).code).toBe('ENETDOWN');
    expect(events).toEqual(['close']);
    expect(arena.stats.inUse).toBe(0);
  });

  it("emits 'error' before 'close' when the interface goes away, as Node's streams do", async () => {
    const arena = Arena.create({ slotSize: 2048, slotCount: 256 });
    const source = AfPacketSource.open(lab.a, { arena, onBurst: () => {} });
    const events: string[] = [];
    source.on('error', (err: NetpdError) => events.push(`error ${err.code} open=${source.open}`));
    source.on('close', () => events.push('close'));
    expect((await lab.ping(2)).received).toBe(2);
    await lab.removeLink();
    expect(await waitFor(() => events.length === 2, 3000)).toBe(true);
    expect(events).toEqual(['error ENETDOWN open=false', 'close']);
  });

  it('refuses to iterate a source that delivers to onBurst (EINVAL)', async () => {
    const arena = Arena.create({ slotSize: 2048, slotCount: 64 });
    const source = AfPacketSource.open(lab.a, { arena, onBurst: () => {} });
    try {
      await expect(source.bursts().next()).rejects.toMatchObject({ code: 'EINVAL' });
    } finally {
      source.close();
    }
  });
});

describe.skipIf(reason !== null)('AfPacketSource.setFilter', () => {
  let lab: Lab;
  beforeEach(async () => { lab = await createLab('setf'); });
  afterEach(async () => { await lab?.destroy(); });

  it.each(['ring', 'mmsg'] as const)('(%s) flips between two filters under a steady stream without losing a frame', async (rxMode) => {
    // 3,000 frames alternating UDP ports 1000 and 2000, each with its sequence number,
    // sent at 3,000/s while the filter flips between the two ports every 40 ms. Each
    // frame is judged by the filter in force when the kernel took it, so from what was
    // received the filter in force at every frame is known: the frame's own port if it
    // came, the other port if not. A lost frame (or one let through by neither filter)
    // shows as two changes one frame apart; a flip shows as one change, far from the
    // others (flips while the sender is descheduled may show as none).
    const N = 3000;
    const stream = Array.from({ length: N }, (_, seq) => udpFrame(lab, seq % 2 ? 2000 : 1000, seq));
    const arena = Arena.create({ slotSize: 2048, slotCount: 4096 });
    const got = new Set<number>();
    const source = AfPacketSource.open(lab.a, {
      arena, rxMode, filter: 'udp dst port 1000',
      onBurst: (vec, n) => {
        for (let i = 0; i < n; i++) {
          const f = copySlot(arena, vec[i]);
          if (f.data.length >= 46 && f.data.readUInt16BE(34) === 40000) got.add(f.data.readUInt32BE(42));
        }
      },
    });
    let port = 1000;
    let flips = 0;
    const flipper = setInterval(() => {
      if (got.size === 0) return; // the sender is still starting
      port = port === 1000 ? 2000 : 1000;
      source.setFilter(`udp dst port ${port}`);
      flips++;
    }, 40);
    let sent;
    try {
      sent = await send(lab, stream, 3000);
    } finally {
      clearInterval(flipper);
    }
    await new Promise((r) => setTimeout(r, 50));
    source.close();
    expect(sent).toBe(N);
    expect(source.stats().dropped).toEqual({ kernel: 0, noslot: 0 });
    const inForce: number[] = [];
    for (let seq = 0; seq < N; seq++) {
      const own = seq % 2 ? 2000 : 1000;
      inForce.push(got.has(seq) ? own : 3000 - own);
    }
    const changes: number[] = [];
    for (let seq = 1; seq < N; seq++) if (inForce[seq] !== inForce[seq - 1]) changes.push(seq);
    expect(inForce[0]).toBe(1000);
    expect(flips).toBeGreaterThan(15);
    expect(changes.length).toBeLessThanOrEqual(flips);
    expect(changes.length, 'the filter did not flip').toBeGreaterThanOrEqual(flips / 2);
    const gaps = changes.slice(1).map((c, i) => c - changes[i]);
    expect(Math.min(...gaps), `changes at ${changes.join(',')}`).toBeGreaterThan(2);
    expect(arena.stats.inUse).toBe(0);
  });

  it('refuses a bad filter and keeps the old one; a closed source is ECLOSED', async () => {
    const arena = Arena.create({ slotSize: 2048, slotCount: 256 });
    const frames: Frame[] = [];
    const source = AfPacketSource.open(lab.a, { arena, filter: 'icmp', onBurst: (vec, n) => { for (let i = 0; i < n; i++) frames.push(copySlot(arena, vec[i])); } });
    expect(() => source.setFilter('icmp and')).toThrow(expect.objectContaining({ code: 'EFILTER' }));
    expect((await lab.ping(3)).received).toBe(3);
    expect(await waitFor(() => frames.length >= 6, 2000)).toBe(true);
    expect(frames.every((f) => f.data[23] === 1)).toBe(true);
    source.setFilter(null);
    expect(await send(lab, [udpFrame(lab, 1000, 7)], 100)).toBe(1);
    expect(await waitFor(() => frames.some((f) => f.data[23] === 17), 2000)).toBe(true);
    source.close();
    expect(() => source.setFilter('icmp')).toThrow(expect.objectContaining({ code: 'ECLOSED' }));
  });
});

describe.skipIf(reason !== null)('AfPacketSource.interfaces', () => {
  let lab: Lab;
  beforeEach(async () => { lab = await createLab('ifs'); });
  afterEach(async () => { await lab?.destroy(); });

  it('lists what `ip -o link` lists, in index order, with the state and link type tcpdump reports', () => {
    const list = AfPacketSource.interfaces();
    const ours = list.filter((i) => i.name !== 'any');
    const ip = execFileSync('ip', ['-o', 'link'], { encoding: 'utf8' }).trim().split('\n').map((line) => {
      const m = /^(\d+): ([^:@]+)(?:@[^:]+)?: <([^>]*)>.* link\/(\S+)/.exec(line)!;
      const flags = m[3].split(',');
      return { index: Number(m[1]), name: m[2], up: flags.includes('UP'), loopback: flags.includes('LOOPBACK'), link: m[4] };
    });
    expect(ours.map((i) => [i.index, i.name, i.up, i.loopback])).toEqual(ip.map((i) => [i.index, i.name, i.up, i.loopback]));
    expect(ours.map((i) => i.index)).toEqual([...ours.map((i) => i.index)].sort((a, b) => a - b));
    for (const i of ours) if (ip.find((x) => x.name === i.name)!.link === 'ether' || i.loopback) expect([i.linkType, i.linkTypeName]).toEqual([1, 'EN10MB']);
    expect(list.at(-1)).toEqual({ index: 0, name: 'any', up: true, running: true, loopback: false, linkType: 113, linkTypeName: 'LINUX_SLL' });
    // tcpdump -D: "N.name [Up, Running, ...]" (it leaves out some it cannot open, and says Up/Running as we do).
    const dump = execFileSync('tcpdump', ['-D'], { encoding: 'utf8' }).trim().split('\n');
    for (const line of dump) {
      const m = /^\d+\.(\S+)(?: \(.*\))? \[([^\]]*)\]/.exec(line);
      if (!m) continue;
      const mine = list.find((i) => i.name === m[1]);
      if (!mine) continue; // bluetooth, usbmon, dbus...: not network interfaces
      const state = m[2].split(', ');
      expect([mine.name, mine.up, mine.running], line).toEqual([mine.name, state.includes('Up'), state.includes('Running')]);
    }
    const a = list.find((i) => i.name === lab.a)!;
    expect(a).toMatchObject({ index: lab.ifindexA, up: true, running: true, loopback: false, linkType: 1 });
  });
});

describe.skipIf(reason !== null)('AfPacketSource on "any"', () => {
  let lab: Lab;
  beforeEach(async () => { lab = await createLab('any'); });
  afterEach(async () => { await lab?.destroy(); });

  /** Our slots and tcpdump's records for the same ping, both from "any" with `direction`/-Q. */
  async function both(direction: 'in' | 'out' | 'inout', filter: (lab: Lab) => string | { tcpdump: string[] }, rxMode: 'ring' | 'mmsg' = 'ring') {
    const expr = `host ${lab.addrB} and icmp`;
    const f = filter(lab);
    const cap = await lab.tcpdump({ args: ['-i', 'any', '-y', 'LINUX_SLL', '-Q', direction, expr] });
    const arena = Arena.create({ slotSize: 2048, slotCount: 1024 });
    const frames: Frame[] = [];
    const program = typeof f === 'string' ? f : ddd(f.tcpdump);
    const source = AfPacketSource.open('any', { arena, rxMode, direction, filter: program, onBurst: (vec, n) => { for (let i = 0; i < n; i++) frames.push(copySlot(arena, vec[i])); } });
    expect(source.linkType).toBe(113);
    expect(source.ifIndex).toBe(0);
    expect((await lab.ping(10, { intervalS: 0.01 })).received).toBe(10);
    await cap.stop();
    await new Promise((r) => setTimeout(r, 20));
    source.close();
    return { ours: frames, theirs: readFrames(cap.file) };
  }

  /** libpcap's program for LINUX_SLL: tcpdump -y LINUX_SLL -ddd. */
  function ddd(args: string[]) {
    const text = execFileSync('tcpdump', ['-i', 'any', '-y', 'LINUX_SLL', '-ddd', ...args], { encoding: 'utf8' });
    return text.trim().split('\n').slice(1).map((l) => {
      const [code, jt, jf, k] = l.trim().split(/\s+/).map(Number);
      return { code, jt, jf, k };
    });
  }

  it.each([['inout', 'ring'], ['in', 'ring'], ['out', 'ring'], ['inout', 'mmsg'], ['out', 'mmsg']] as const)('delivers what tcpdump -i any -y LINUX_SLL -Q %s delivers, byte for byte (libpcap\'s own program; rxMode %s)', async (direction, rxMode) => {
    const { ours, theirs } = await both(direction, (l) => ({ tcpdump: [`host ${l.addrB} and icmp`] }), rxMode);
    expect(theirs.length).toBe(direction === 'inout' ? 20 : 10);
    expect(ours.map((f) => hex(f.data))).toEqual(theirs.map((f) => hex(f.data)));
    expect(ours.map((f) => f.wireLen)).toEqual(theirs.map((f) => f.wireLen));
    expect(ours.every((f) => f.ifIndex === lab.ifindexA)).toBe(true);
    // The SLL header: packet type 0 (to us) or 4 (outgoing), ARPHRD_ETHER, 6-byte address, IPv4.
    for (const f of ours) {
      expect([0, 4]).toContain(f.data.readUInt16BE(0));
      expect([f.data.readUInt16BE(2), f.data.readUInt16BE(4), f.data.readUInt16BE(14)]).toEqual([1, 6, 0x0800]);
    }
  });

  it('compiles an expression for LINUX_SLL: what tcpdump -i any accepts', async () => {
    const { ours, theirs } = await both('inout', (l) => `host ${l.addrB} and icmp`);
    expect(theirs.length).toBe(20);
    expect(ours.map((f) => hex(f.data))).toEqual(theirs.map((f) => hex(f.data)));
  });

  it.each(['ring', 'mmsg'] as const)('(%s) puts a VLAN tag back before the protocol field, as tcpdump -i any does', async (rxMode) => {
    // Tagged frames from B: the kernel takes the tag off into metadata on the way in.
    const tagged = [5, 6, 7].map((seq) => {
      const f = Buffer.from(udpFrame(lab, 1000, seq));
      return Buffer.concat([f.subarray(0, 12), Buffer.from([0x81, 0x00, 0x20, 0x05]), f.subarray(12)]);
    });
    const expr = `udp and host ${lab.addrB}`; // libpcap has no `vlan` for LINUX_SLL: the kernel filters the untagged packet
    const cap = await lab.tcpdump({ args: ['-i', 'any', '-y', 'LINUX_SLL', expr] });
    const arena = Arena.create({ slotSize: 2048, slotCount: 1024 });
    const frames: Frame[] = [];
    const source = AfPacketSource.open('any', { arena, rxMode, filter: ddd([expr]), onBurst: (vec, n) => { for (let i = 0; i < n; i++) frames.push(copySlot(arena, vec[i])); } });
    expect(await send(lab, tagged, 100)).toBe(3);
    await cap.stop();
    await new Promise((r) => setTimeout(r, 20));
    source.close();
    const theirs = readFrames(cap.file);
    expect(theirs).toHaveLength(3);
    // SLL header, then TPID 0x8100, TCI (priority 1, VLAN 5), then the protocol.
    expect(theirs.map((f) => f.data.subarray(14, 20).toString('hex'))).toEqual(Array(3).fill('810020050800'));
    expect(frames.map((f) => `${hex(f.data)} ${f.wireLen}`)).toEqual(theirs.map((f) => `${hex(f.data)} ${f.wireLen}`));
  });

  it('cannot transmit (EINVAL) and refuses a filter that reads SLL header bytes the kernel cannot see (ENOTSUP)', () => {
    const arena = Arena.create({ slotSize: 2048, slotCount: 64 });
    expect(() => AfPacketSource.open('any', { arena, transmitOnly: true })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    // A dispatcher whose expressions are compiled for Ethernet would match nothing in cooked slots.
    expect(() => AfPacketSource.open('any', { dispatcher: PacketDispatcher.create({ arena }) })).toThrow(expect.objectContaining({ code: 'EINVAL', message: expect.stringMatching(/linkType: 'LINUX_SLL'/) }));
    const sll = PacketDispatcher.create({ arena, linkType: 'LINUX_SLL' });
    AfPacketSource.open('any', { dispatcher: sll }).close();
    const readsAddress = [{ code: 0x20, jt: 0, jf: 0, k: 6 }, { code: 0x06, jt: 0, jf: 0, k: 65535 }];
    expect(() => AfPacketSource.open('any', { arena, filter: readsAddress })).toThrow(expect.objectContaining({ code: 'ENOTSUP', message: expect.stringMatching(/byte 6 of the LINUX_SLL header/) }));
  });
});
