// Rings of slot indices in the arena (assembly/ring.ts), for handing bursts between
// producers and consumers the way DPDK's rte_ring does. Burst calls move as many as
// fit and return the count; bulk calls move all or none. Full and empty are counts,
// never exceptions.

import { NetpdError } from './errors.js';
import type { Arena } from './arena.js';

export interface RingOptions {
  /** Only one producer will ever enqueue: skips the compare-and-swap. */
  singleProducer?: boolean;
  /** Only one consumer will ever dequeue. */
  singleConsumer?: boolean;
}

export class Ring {
  readonly arena: Arena;
  readonly size: number;
  /** @internal */ readonly addr: number;

  constructor(arena: Arena, size: number, options: RingOptions = {}) {
    if (!Number.isInteger(size) || size < 1 || size > 2 ** 30 || (size & (size - 1)) !== 0) {
      throw new NetpdError('EINVAL', `a ring size must be a power of two up to 2^30, got ${size}`);
    }
    this.arena = arena;
    this.size = size;
    this.addr = arena.reserve(arena.core.ring_bytes(size), 64);
    arena.core.ring_init(this.addr, size, (options.singleProducer ? 1 : 0) | (options.singleConsumer ? 2 : 0));
  }

  /** Enqueues as many of vec[0..n) as fit; returns how many. */
  enqueueBurst(vec: Uint32Array, n: number): number {
    return this.arena.core.ring_enqueue_burst(this.addr, this.arena.addressOf(vec, n), n);
  }
  /** Enqueues all of vec[0..n) or nothing; returns n or 0. */
  enqueueBulk(vec: Uint32Array, n: number): number {
    return this.arena.core.ring_enqueue_bulk(this.addr, this.arena.addressOf(vec, n), n);
  }
  /** Dequeues up to n entries into vec; returns how many. */
  dequeueBurst(vec: Uint32Array, n: number): number {
    return this.arena.core.ring_dequeue_burst(this.addr, this.arena.addressOf(vec, n), n);
  }
  /** Dequeues exactly n entries into vec or nothing; returns n or 0. */
  dequeueBulk(vec: Uint32Array, n: number): number {
    return this.arena.core.ring_dequeue_bulk(this.addr, this.arena.addressOf(vec, n), n);
  }
  /** Entries present. */
  get count(): number { return this.arena.core.ring_count(this.addr) >>> 0; }
  /** Room left. */
  get freeCount(): number { return this.arena.core.ring_free_count(this.addr) >>> 0; }
}
