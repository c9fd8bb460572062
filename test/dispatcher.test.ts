import { describe, it, expect } from 'vitest';
import { Arena } from '../bindings/arena.js';
import { PacketDispatcher } from '../bindings/dispatcher.js';
import type { Packet, PacketBatch } from '../bindings/packet.js';
import { arp, udp4, arpOp, halfwordEquals } from './support/frames.js';
import { load } from './support/slots.js';

const firstByteOf = (p: Packet) => p.u16(20);

describe('PacketDispatcher', () => {
  it('sends ARP requests and replies to their owners and everything else to the default netio', () => {
    const arena = Arena.create({ slotSize: 256, slotCount: 64 });
    const seen: Record<string, number[]> = { req: [], rep: [], other: [] };
    const pd = PacketDispatcher.create({ arena, defaultNetio: (p) => seen.other.push(p.slot) });
    pd.register(arpOp(1), (p) => seen.req.push(firstByteOf(p)), { name: 'arp-request' });
    pd.register(arpOp(2), (p) => seen.rep.push(firstByteOf(p)), { name: 'arp-reply' });
    const vec = load(arena, [arp(1), udp4(53), arp(2), arp(1), udp4(80)]);
    pd.dispatchBurst(vec, 5);
    expect(seen.req).toEqual([1, 1]);
    expect(seen.rep).toEqual([2]);
    expect(seen.other).toEqual([vec[1], vec[4]]);
    const s = pd.stats();
    expect(s.in).toBe(5);
    expect(s.delivered).toBe(5);
    expect(s.owners.map((o) => [o.name, o.packets, o.bytes])).toEqual([
      ['arp-request', 2, 2 * arp(1).length],
      ['arp-reply', 1, arp(2).length],
    ]);
    expect(s.default.packets).toBe(2);
  });

  it('counts unmatched packets as dropped (nomatch) when there is no default netio', () => {
    const arena = Arena.create({ slotSize: 256, slotCount: 8 });
    const pd = PacketDispatcher.create({ arena });
    pd.register(arpOp(1), () => {});
    pd.dispatchBurst(load(arena, [arp(1), udp4(1), udp4(2)]), 3);
    const s = pd.stats();
    expect(s.dropped.nomatch).toBe(2);
    expect(s.in).toBe(s.delivered + Object.values(s.dropped).reduce((a, b) => a + b));
  });

  it('gives a packet to the first registered of overlapping descriptions', () => {
    const arena = Arena.create({ slotSize: 256, slotCount: 8 });
    const got: string[] = [];
    const pd = PacketDispatcher.create({ arena });
    const anyArp = pd.register(halfwordEquals(12, 0x806), () => got.push('any-arp'));
    pd.register(arpOp(1), () => got.push('request'));
    pd.dispatchBurst(load(arena, [arp(1)]), 1);
    pd.unregister(anyArp);
    pd.dispatchBurst(load(arena, [arp(1)]), 1);
    expect(got).toEqual(['any-arp', 'request']);
  });

  it('refuses stale ids, so a reused table entry is never unregistered by its old id', () => {
    const arena = Arena.create({ slotSize: 256, slotCount: 8 });
    const pd = PacketDispatcher.create({ arena, maxOwners: 1 });
    const a = pd.register(arpOp(1), () => {});
    pd.unregister(a);
    const b = pd.register(arpOp(2), () => {});
    expect(b).not.toBe(a);
    expect(() => pd.unregister(a)).toThrow(expect.objectContaining({ code: 'EBADID' }));
    expect(pd.ownerCount).toBe(1);
    expect(() => pd.register(arpOp(1), () => {})).toThrow(expect.objectContaining({ code: 'EFULL' }));
    pd.unregister(b);
    expect(pd.ownerCount).toBe(0);
  });

  it('hands pushBatch owners their packets grouped, in arrival order, one call per run', () => {
    const arena = Arena.create({ slotSize: 256, slotCount: 16 });
    const calls: number[][] = [];
    const pd = PacketDispatcher.create({ arena, defaultNetio: { pushBatch: () => {} } });
    pd.register(halfwordEquals(12, 0x800), { pushBatch: (b: PacketBatch) => calls.push(Array.from({ length: b.length }, (_, i) => b.packet(i).u16(36))) });
    pd.dispatchBurst(load(arena, [udp4(1), arp(1), udp4(2), arp(2), udp4(3)]), 5);
    expect(calls).toEqual([[1, 2, 3]]);
  });

  it('isolates an owner that throws: counts it, emits error, and keeps dispatching', () => {
    const arena = Arena.create({ slotSize: 256, slotCount: 16 });
    const errors: string[] = [];
    const good: number[] = [];
    const pd = PacketDispatcher.create({ arena });
    pd.on('error', (err, owner) => errors.push(`${owner.name}: ${err.code} ${(err.cause as Error).message}`));
    pd.register(arpOp(1), () => { throw new Error('boom'); }, { name: 'bad' });
    pd.register(arpOp(2), (p) => good.push(p.u16(20)), { name: 'good' });
    pd.dispatchBurst(load(arena, [arp(1), arp(2), arp(1), arp(2)]), 4);
    expect(errors).toEqual(['bad: EOWNER boom', 'bad: EOWNER boom']);
    expect(good).toEqual([2, 2]);
    const s = pd.stats();
    expect(s.dropped['owner-error']).toBe(2);
    expect(s.in).toBe(s.delivered + s.dropped['owner-error']);
  });

  it('lets a netio register and unregister owners from inside its callback', () => {
    const arena = Arena.create({ slotSize: 256, slotCount: 16 });
    const log: string[] = [];
    const pd = PacketDispatcher.create({ arena });
    let second = -1;
    const first = pd.register(arpOp(1), () => {
      log.push('first');
      pd.unregister(first);
      second = pd.register(arpOp(1), () => log.push('second'));
    });
    pd.dispatchBurst(load(arena, [arp(1), arp(1)]), 2);
    // The second request was classified to `first` in the same burst, which is gone.
    expect(log).toEqual(['first']);
    expect(pd.stats().dropped.unregistered).toBe(1);
    pd.dispatchBurst(load(arena, [arp(1)]), 1);
    expect(log).toEqual(['first', 'second']);
    expect(second).toBeGreaterThan(0);
  });

  it('keeps a retained packet alive after its burst is freed', () => {
    const arena = Arena.create({ slotSize: 256, slotCount: 4 });
    const kept: Packet[] = [];
    const pd = PacketDispatcher.create({ arena, defaultNetio: (p) => kept.push(p.retain()) });
    const vec = load(arena, [udp4(7)]);
    pd.dispatchBurst(vec, 1);
    arena.freeBurst(vec, 1);
    expect(arena.free).toBe(3);
    expect(kept[0].u16(36)).toBe(7);
    kept[0].release();
    expect(arena.free).toBe(4);
  });

  it('takes pcap-filter expressions as descriptions', () => {
    const arena = Arena.create({ slotSize: 256, slotCount: 16 });
    const got: string[] = [];
    const pd = PacketDispatcher.create({ arena });
    pd.register('arp[6:2] = 2', () => got.push('reply'));
    pd.register('udp dst port 53', () => got.push('dns'));
    pd.dispatchBurst(load(arena, [arp(1), arp(2), udp4(53), udp4(54)]), 4);
    expect(got).toEqual(['reply', 'dns']);
  });

  it('rejects invalid descriptions with EBADPROG, EFILTER or EBADDESC', () => {
    const pd = PacketDispatcher.create({ arena: Arena.create({ slotSize: 64, slotCount: 1 }) });
    expect(() => pd.register([{ code: 0x34, jt: 0, jf: 0, k: 0 }, { code: 6, jt: 0, jf: 0, k: 0 }], () => {}))
      .toThrow(expect.objectContaining({ code: 'EBADPROG', details: expect.objectContaining({ instruction: 0 }) }));
    expect(() => pd.register('tcp port 80 and', () => {})).toThrow(expect.objectContaining({ code: 'EFILTER' }));
    expect(() => pd.register({} as never, () => {})).toThrow(expect.objectContaining({ code: 'EBADDESC' }));
    expect(() => pd.register(arpOp(1), {} as never)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });

  it('leaks no slot over a million packets with owners coming and going', () => {
    const arena = Arena.create({ slotSize: 128, slotCount: 1024 });
    const frames = [arp(1), arp(2), udp4(53), udp4(80)];
    const pd = PacketDispatcher.create({ arena, defaultNetio: () => {} });
    const held: Packet[] = [];
    const ids: number[] = [];
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const vec = arena.burstVector(256);
    let total = 0;
    while (total < 1_000_000) {
      const r = rand();
      if (r < 0.02 && ids.length < 50) {
        ids.push(pd.register(rand() < 0.5 ? arpOp(1 + Math.floor(rand() * 2)) : halfwordEquals(12, 0x800), (p) => {
          if (rand() < 0.01) held.push(p.retain());
        }));
      } else if (r < 0.04 && ids.length > 0) {
        pd.unregister(ids.splice(Math.floor(rand() * ids.length), 1)[0]);
      }
      const n = arena.allocBurst(vec, 1 + Math.floor(rand() * 256));
      for (let i = 0; i < n; i++) {
        const f = frames[(total + i) & 3];
        arena.bytes.set(f, arena.dataOffset(vec[i]));
        arena.setPacket(vec[i], f.length, f.length, 0, 0, 0);
      }
      pd.dispatchBurst(vec, n);
      arena.freeBurst(vec, n);
      total += n;
      while (held.length > 20) held.shift()!.release();
    }
    for (const p of held) p.release();
    expect(arena.free).toBe(1024);
    const s = pd.stats();
    expect(s.in).toBe(total);
    expect(s.in).toBe(s.delivered + s.dropped.nomatch + s.dropped['owner-error'] + s.dropped.unregistered);
  });
});
