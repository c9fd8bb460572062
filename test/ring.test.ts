import { describe, it, expect } from 'vitest';
import { Arena } from '../bindings/arena.js';
import { Ring } from '../bindings/ring.js';

describe('Ring', () => {
  for (const [label, opts] of [['multi-producer/multi-consumer', {}], ['single-producer/single-consumer', { singleProducer: true, singleConsumer: true }]] as const) {
    it(`${label}: keeps FIFO order across wrap-around and reports full and empty as counts`, () => {
      const arena = Arena.create({ slotSize: 64, slotCount: 1 });
      const ring = new Ring(arena, 8, opts);
      const inVec = arena.burstVector(32);
      const outVec = arena.burstVector(32);
      let next = 0;
      let expected = 0;
      for (let round = 0; round < 5000; round++) {
        const want = 1 + (round % 11);
        for (let i = 0; i < want; i++) inVec[i] = next + i;
        const put = ring.enqueueBurst(inVec, want);
        expect(put).toBe(Math.min(want, 8 - (next - expected)));
        next += put;
        expect(ring.count).toBe(next - expected);
        const got = ring.dequeueBurst(outVec, 1 + (round % 7));
        for (let i = 0; i < got; i++) expect(outVec[i]).toBe(expected + i);
        expected += got;
      }
      // Full: a burst takes what fits, a bulk takes nothing.
      while (ring.freeCount > 0) ring.enqueueBurst(inVec, 1);
      expect(ring.enqueueBurst(inVec, 4)).toBe(0);
      expect(ring.enqueueBulk(inVec, 1)).toBe(0);
      // Bulk dequeue is all or nothing.
      expect(ring.dequeueBulk(outVec, 9)).toBe(0);
      expect(ring.dequeueBulk(outVec, 8)).toBe(8);
      expect(ring.dequeueBurst(outVec, 1)).toBe(0);
      expect(ring.count).toBe(0);
    });
  }

  it('counts correctly when its u32 indices wrap past 2^32', () => {
    const arena = Arena.create({ slotSize: 64, slotCount: 1 });
    const ring = new Ring(arena, 4);
    // Move every head and tail close to 2^32, as after four billion entries.
    const words = arena.words;
    for (const off of [64, 68, 128, 132]) words[(ring.addr + off) >>> 2] = 0xfffffffe;
    const v = arena.burstVector(4);
    v.set([1, 2, 3, 4]);
    expect(ring.enqueueBurst(v, 4)).toBe(4);
    expect(ring.count).toBe(4);
    expect(ring.dequeueBurst(v, 4)).toBe(4);
    expect(Array.from(v)).toEqual([1, 2, 3, 4]);
  });

  it('rejects sizes that are not powers of two', () => {
    const arena = Arena.create({ slotSize: 64, slotCount: 1 });
    expect(() => new Ring(arena, 6)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
  });
});
