import { describe, it, expect } from 'vitest';
import { Arena } from '../bindings/arena.js';

describe('arena', () => {
  it('allocates every slot exactly once, then reports exhaustion by a short count', () => {
    const arena = Arena.create({ slotSize: 128, slotCount: 100 });
    const vec = arena.burstVector(64);
    const seen = new Set<number>();
    let got = arena.allocBurst(vec, 64);
    expect(got).toBe(64);
    for (let i = 0; i < got; i++) seen.add(vec[i]);
    got = arena.allocBurst(vec, 64);
    expect(got).toBe(36);
    for (let i = 0; i < got; i++) seen.add(vec[i]);
    expect(seen.size).toBe(100);
    expect([...seen].every((s) => s >= 0 && s < 100)).toBe(true);
    expect(arena.allocBurst(vec, 8)).toBe(0);
    expect(arena.stats.allocFailures).toBe(64 - 36 + 8);
    expect(arena.free).toBe(0);
  });

  it('frees a slot only when its last reference is dropped', () => {
    const arena = Arena.create({ slotSize: 64, slotCount: 4 });
    const vec = arena.burstVector(4);
    expect(arena.allocBurst(vec, 1)).toBe(1);
    const slot = vec[0];
    arena.retain(slot);
    expect(arena.refCount(slot)).toBe(2);
    arena.release(slot);
    expect(arena.free).toBe(3);
    arena.release(slot);
    expect(arena.free).toBe(4);
  });

  it('reclaims into the caller\'s hands the slots no one else holds, and leaves shared ones to their other holder', () => {
    const arena = Arena.create({ slotSize: 64, slotCount: 16 });
    const vec = arena.burstVector(8);
    expect(arena.allocBurst(vec, 8)).toBe(8);
    const all = [...vec];
    arena.retain(all[2]);
    arena.retain(all[5]);
    arena.retain(all[5]);
    const k = arena.core.arena_reclaim_burst(arena.base, vec.byteOffset, 8);
    expect(k).toBe(6);
    expect([...vec.subarray(0, 6)]).toEqual(all.filter((_, i) => i !== 2 && i !== 5));
    for (const s of vec.subarray(0, 6)) expect(arena.refCount(s)).toBe(1);
    expect(arena.refCount(all[2])).toBe(1);
    expect(arena.refCount(all[5])).toBe(2);
    // Nothing went back to the free list: the caller and the other holders have all 8.
    expect(arena.stats.inUse).toBe(8);
    arena.freeBurst(vec, 6);
    arena.release(all[2]);
    arena.release(all[5]);
    arena.release(all[5]);
    expect(arena.stats.inUse).toBe(0);
  });

  it('keeps the free list whole across many wrap-arounds of its ring', () => {
    const arena = Arena.create({ slotSize: 64, slotCount: 37 });
    const vec = arena.burstVector(32);
    for (let round = 0; round < 10000; round++) {
      const n = 1 + (round % 32);
      const got = arena.allocBurst(vec, n);
      expect(got).toBe(n);
      arena.freeBurst(vec, got);
    }
    expect(arena.free).toBe(37);
    const all = arena.burstVector(37);
    expect(arena.allocBurst(all, 37)).toBe(37);
    expect(new Set(all).size).toBe(37);
  });

  it('stores nanosecond timestamps exactly across the full 32-bit seconds range', () => {
    const arena = Arena.create({ slotSize: 64, slotCount: 2 });
    const vec = arena.burstVector(1);
    arena.allocBurst(vec, 1);
    for (const [sec, nsec] of [[0, 0], [1, 999999999], [1700000000, 123456789], [0xffffffff, 999999999], [65535, 1], [65536, 0]]) {
      arena.setPacket(vec[0], 60, 60, sec, nsec, 0);
      expect(arena.timestampSec(vec[0])).toBe(sec);
      expect(arena.timestampNsec(vec[0])).toBe(nsec);
      expect(arena.timestampNs(vec[0])).toBe(BigInt(sec) * 1000000000n + BigInt(nsec));
    }
  });

  it('cuts packets longer than a slot, keeps the wire length and counts them', () => {
    const arena = Arena.create({ slotSize: 64, slotCount: 2 });
    const vec = arena.burstVector(1);
    arena.allocBurst(vec, 1);
    arena.setPacket(vec[0], 1500, 1514, 1, 2, 3);
    expect(arena.capLen(vec[0])).toBe(64);
    expect(arena.wireLen(vec[0])).toBe(1514);
    expect(arena.ifIndex(vec[0])).toBe(3);
    expect(arena.stats.truncated).toBe(1);
  });

  it('rejects impossible layouts with EINVAL', () => {
    expect(() => Arena.create({ slotSize: 100 })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => Arena.create({ slotCount: 0 })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    expect(() => Arena.create({ slotSize: 65536, slotCount: 65536 })).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });
});
