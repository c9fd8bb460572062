// Multi-producer/multi-consumer rings across real threads sharing the arena memory:
// nothing lost, nothing duplicated, each producer's order kept for each consumer.
import { describe, it, expect } from 'vitest';
import { Worker } from 'node:worker_threads';
import { Arena } from '../bindings/arena.js';
import { Ring } from '../bindings/ring.js';

function run(data: Record<string, unknown>): Promise<{ produced?: number; got?: number; sum?: number; ordered?: boolean }> {
  return new Promise((resolve, reject) => {
    const w = new Worker(new URL('./support/ring-worker.mjs', import.meta.url), { workerData: data });
    w.once('message', resolve);
    w.once('error', reject);
  });
}

describe('Ring across worker threads', () => {
  it('moves 400,000 values from two producers to two consumers exactly once', async () => {
    const arena = Arena.create({ slotSize: 64, slotCount: 1 });
    const ring = new Ring(arena, 256);
    const done = arena.reserve(4, 4);
    const perProducer = 200_000;
    const common = { memory: arena.memory, ring: ring.addr, perProducer, producers: 2, done };
    const jobs = [
      run({ ...common, role: 'producer', id: 0, burst: 32, vec: arena.burstVector(64).byteOffset }),
      run({ ...common, role: 'producer', id: 1, burst: 7, vec: arena.burstVector(64).byteOffset }),
      run({ ...common, role: 'consumer', id: 0, burst: 32, vec: arena.burstVector(64).byteOffset }),
      run({ ...common, role: 'consumer', id: 1, burst: 5, vec: arena.burstVector(64).byteOffset }),
    ];
    const [, , c0, c1] = await Promise.all(jobs);
    const total = 2 * perProducer;
    expect(c0.got! + c1.got!).toBe(total);
    expect(c0.sum! + c1.sum!).toBe((total * (total - 1)) / 2);
    expect(c0.ordered && c1.ordered).toBe(true);
    expect(ring.count).toBe(0);
  });
});
