// Rings of 32-bit entries (slot indices) in raw arena memory, after DPDK's rte_ring.
//
// A ring is a power-of-two array of u32 entries with two head/tail pairs, one for
// producers and one for consumers. Indices are free-running u32 counters; an entry's
// place is `index & mask`, so wrap-around costs nothing and the ring holds exactly
// `size` entries (used = prodTail - consHead, computed modulo 2^32).
//
// Multi-producer enqueue reserves a range by compare-and-swap on prodHead, fills it,
// then waits until every earlier producer has published (prodTail == its head) before
// moving prodTail past its own range. Consumers mirror that on the consumer pair.
// Single-producer / single-consumer rings (flags RING_SP_ENQ / RING_SC_DEQ) skip the
// CAS and the wait. Waiting is a bounded spin in this module: never memory.atomic.wait
// (it miscompiles in V8's baseline tier on Node 20).
//
// Burst calls take as many entries as fit (or are present) and return how many; bulk
// calls take all or nothing. A full or empty ring is a return value, never a trap.
//
//   Ring header, 64-byte aligned (each head/tail pair on its own cache line)
//   ┌──────────┬──────────┬──────────┬──────────┐
//   │ size u32 │ mask u32 │ flags u32│  (pad)   │  +0
//   ├──────────┴──────────┴──────────┴──────────┤
//   │ prodHead u32 │ prodTail u32 │   (pad)     │  +64
//   ├──────────────┴──────────────┴─────────────┤
//   │ consHead u32 │ consTail u32 │   (pad)     │  +128
//   ├──────────────┴──────────────┴─────────────┤
//   │ entries u32[size]                         │  +192
//   └───────────────────────────────────────────┘

export const RING_SP_ENQ: u32 = 1;
export const RING_SC_DEQ: u32 = 2;

@unmanaged export class Ring {
  size: u32;
  mask: u32;
  flags: u32;
  @inline static get PROD_HEAD(): usize { return 64; }
  @inline static get PROD_TAIL(): usize { return 68; }
  @inline static get CONS_HEAD(): usize { return 128; }
  @inline static get CONS_TAIL(): usize { return 132; }
  @inline static get ENTRIES(): usize { return 192; }
}

/** Bytes a ring of `size` entries occupies; 0 when size is not a power of two. */
export function ring_bytes(size: u32): usize {
  if (size == 0 || (size & (size - 1)) != 0) return 0;
  return Ring.ENTRIES + (<usize>size << 2);
}

/** Lays out an empty ring at `ring` (64-byte aligned). Returns the bytes used, 0 on a bad size. */
export function ring_init(ring: usize, size: u32, flags: u32): usize {
  const bytes = ring_bytes(size);
  if (bytes == 0) return 0;
  memory.fill(ring, 0, Ring.ENTRIES);
  const r = changetype<Ring>(ring);
  r.size = size;
  r.mask = size - 1;
  r.flags = flags;
  return bytes;
}

/** Entries present (a snapshot when other threads are active). */
export function ring_count(ring: usize): u32 {
  return atomic.load<u32>(ring + Ring.PROD_TAIL) - atomic.load<u32>(ring + Ring.CONS_HEAD);
}

/** Room left (a snapshot when other threads are active). */
export function ring_free_count(ring: usize): u32 {
  return changetype<Ring>(ring).size - ring_count(ring);
}

// Reserves up to n entries on one side. `fixed` asks for all n or none. Returns the
// number reserved and leaves the old head in the low word of the result's high part.
@inline function reserve(ring: usize, headAt: usize, otherTailAt: usize, n: u32, fixed: bool, single: bool, producing: bool): u64 {
  const r = changetype<Ring>(ring);
  let head: u32;
  let take: u32;
  while (true) {
    head = atomic.load<u32>(ring + headAt);
    const otherTail = atomic.load<u32>(ring + otherTailAt);
    const avail: u32 = producing ? r.size + otherTail - head : otherTail - head;
    take = n <= avail ? n : (fixed ? 0 : avail);
    if (take == 0) return <u64>head << 32;
    if (single) {
      atomic.store<u32>(ring + headAt, head + take);
      break;
    }
    if (atomic.cmpxchg<u32>(ring + headAt, head, head + take) == head) break;
  }
  return (<u64>head << 32) | take;
}

// Publishes [head, head+n) on one side once every earlier reservation is published.
@inline function publish(ring: usize, tailAt: usize, head: u32, n: u32, single: bool): void {
  if (!single) {
    while (atomic.load<u32>(ring + tailAt) != head) { /* an earlier producer is still copying */ }
  }
  atomic.store<u32>(ring + tailAt, head + n);
}

// Moves up to n entries between the vector `vec` and the ring: into it when producing,
// out of it when consuming.
@inline function transfer(ring: usize, vec: usize, n: u32, fixed: bool, producing: bool): u32 {
  const r = changetype<Ring>(ring);
  const single = (r.flags & (producing ? RING_SP_ENQ : RING_SC_DEQ)) != 0;
  const res = producing
    ? reserve(ring, Ring.PROD_HEAD, Ring.CONS_TAIL, n, fixed, single, true)
    : reserve(ring, Ring.CONS_HEAD, Ring.PROD_TAIL, n, fixed, single, false);
  const take = <u32>res;
  if (take == 0) return 0;
  const head = <u32>(res >> 32);
  const mask = r.mask;
  const entries = ring + Ring.ENTRIES;
  for (let i: u32 = 0; i < take; i++) {
    const slot = entries + (<usize>((head + i) & mask) << 2);
    const item = vec + (<usize>i << 2);
    if (producing) store<u32>(slot, load<u32>(item));
    else store<u32>(item, load<u32>(slot));
  }
  publish(ring, producing ? Ring.PROD_TAIL : Ring.CONS_TAIL, head, take, single);
  return take;
}

/** Enqueues as many of src[0..n) as fit; returns how many (0 when full). */
export function ring_enqueue_burst(ring: usize, src: usize, n: u32): u32 { return transfer(ring, src, n, false, true); }
/** Enqueues all of src[0..n) or nothing; returns n or 0. */
export function ring_enqueue_bulk(ring: usize, src: usize, n: u32): u32 { return transfer(ring, src, n, true, true); }
/** Dequeues up to n entries into dst; returns how many (0 when empty). */
export function ring_dequeue_burst(ring: usize, dst: usize, n: u32): u32 { return transfer(ring, dst, n, false, false); }
/** Dequeues exactly n entries into dst or nothing; returns n or 0. */
export function ring_dequeue_bulk(ring: usize, dst: usize, n: u32): u32 { return transfer(ring, dst, n, true, false); }

/** Fills an empty, unshared ring with 0, 1, ..., n-1 (n <= size). Used to seed free lists. */
export function ring_fill_sequence(ring: usize, n: u32): void {
  const entries = ring + Ring.ENTRIES;
  for (let i: u32 = 0; i < n; i++) store<u32>(entries + (<usize>i << 2), i);
  atomic.store<u32>(ring + Ring.PROD_HEAD, n);
  atomic.store<u32>(ring + Ring.PROD_TAIL, n);
}
