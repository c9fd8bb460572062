// The packet arena: fixed-size packet slots, their metadata, and a free list, all in
// the one linear memory that JavaScript, the core and (later) worker threads share.
//
// A slot is a packet buffer of `slotSize` bytes (a multiple of 64) identified by its
// index. Each slot has a 32-byte metadata record. The free list is a multi-producer,
// multi-consumer ring of free slot indices, so allocation and freeing are burst ring
// operations and stay safe when several threads work on one arena. A slot's reference
// count is 1 when allocated; clones and owners that keep a packet add references,
// and the slot returns to the free list when the count falls to zero. Nothing here
// allocates: the layout is fixed by arena_init and the control region (tables, burst
// vectors, programs) is carved out of a bump region reserved at the same time.
//
//   Arena (base 64-byte aligned)
//   ┌──────────────────────────┐ base
//   │ ArenaHeader              │
//   ├──────────────────────────┤ base + 64
//   │ free ring (Ring, MP/MC)  │ ring_bytes(pow2(slotCount))
//   ├──────────────────────────┤ meta
//   │ SlotMeta[slotCount]      │ 32 bytes each
//   ├──────────────────────────┤ data (64-byte aligned)
//   │ slot data[slotCount]     │ slotSize bytes each
//   ├──────────────────────────┤ control
//   │ control region (bump)    │ controlBytes
//   └──────────────────────────┘ end
//
//   SlotMeta
//   ┌──────────┬──────────┬──────────────────────┬──────────┬──────────┬──────────┬──────────┐
//   │capLen u32│wireLen   │ tsNs u64             │ifIndex   │flowHash  │refCount  │flags u32 │
//   │          │u32       │                      │u32       │u32       │i32       │          │
//   └──────────┴──────────┴──────────────────────┴──────────┴──────────┴──────────┴──────────┘
//   +0         +4         +8                     +16        +20        +24        +28

import { ring_bytes, ring_init, ring_fill_sequence, ring_enqueue_burst, ring_dequeue_burst, ring_count } from './ring';

export const ARENA_MAGIC: u32 = 0x4150444e; // "NDPA" little-endian
export const SLOT_TRUNCATED: u32 = 1;
export const SLOT_HAS_FLOWHASH: u32 = 2;

@unmanaged export class ArenaHeader {
  magic: u32;
  slotSize: u32;
  slotCount: u32;
  meta: u32;
  data: u32;
  control: u32;
  controlNext: u32;  // bump pointer, advanced atomically
  end: u32;
  truncated: u32;    // packets cut to the slot size (counter)
  allocFailures: u32;// slots asked for but not available (counter)
}

@unmanaged export class SlotMeta {
  capLen: u32;
  wireLen: u32;
  tsNs: u64;
  ifIndex: u32;
  flowHash: u32;
  refCount: i32;
  flags: u32;
}

@inline const HEADER_BYTES: usize = 64;
@inline const META_BYTES: usize = 32;
@inline const REFCOUNT: usize = offsetof<SlotMeta>('refCount');
@inline export function freeRing(arena: usize): usize { return arena + HEADER_BYTES; }

function pow2ceil(n: u32): u32 {
  return n <= 1 ? 1 : (<u32>1) << (32 - clz<u32>(n - 1));
}

@inline function align(x: usize, a: usize): usize { return (x + a - 1) & ~(a - 1); }

/** The first address callers may use for an arena (past the module's own data). */
export function heap_base(): usize { return align(__heap_base, 64); }

/** Total bytes an arena with these parameters occupies from its base, or 0 if invalid. */
export function arena_bytes(slotSize: u32, slotCount: u32, controlBytes: u32): u64 {
  if (slotSize < 64 || (slotSize & 63) != 0 || slotCount == 0 || slotCount > 0x40000000) return 0;
  const ring = <u64>ring_bytes(pow2ceil(slotCount));
  const meta = align(<usize>(HEADER_BYTES + ring), 64);
  const data = <u64>align(<usize>(meta + <u64>slotCount * META_BYTES), 64);
  return data + <u64>slotCount * slotSize + align(controlBytes, 64);
}

/**
 * Lays out an arena at `arena` (64-byte aligned) with every slot free.
 * Returns the end address, or 0 if the parameters are invalid.
 */
export function arena_init(arena: usize, slotSize: u32, slotCount: u32, controlBytes: u32): usize {
  const total = arena_bytes(slotSize, slotCount, controlBytes);
  if (total == 0 || (arena & 63) != 0) return 0;
  const ring = freeRing(arena);
  ring_init(ring, pow2ceil(slotCount), 0);
  const h = changetype<ArenaHeader>(arena);
  h.magic = ARENA_MAGIC;
  h.slotSize = slotSize;
  h.slotCount = slotCount;
  h.meta = <u32>align(ring + ring_bytes(pow2ceil(slotCount)), 64);
  h.data = <u32>align(<usize>h.meta + <usize>slotCount * META_BYTES, 64);
  h.control = h.data + slotCount * slotSize;
  h.controlNext = h.control;
  h.end = <u32>(arena + <usize>total);
  h.truncated = 0;
  h.allocFailures = 0;
  memory.fill(h.meta, 0, <usize>slotCount * META_BYTES);
  ring_fill_sequence(ring, slotCount);
  return h.end;
}

/** Reserves `bytes` (aligned to `alignTo`, a power of two) from the control region; 0 if it is exhausted. */
export function arena_reserve(arena: usize, bytes: u32, alignTo: u32): usize {
  const h = changetype<ArenaHeader>(arena);
  const at = arena + offsetof<ArenaHeader>('controlNext');
  while (true) {
    const cur = atomic.load<u32>(at);
    const start = (cur + alignTo - 1) & ~(alignTo - 1);
    const next = <u64>start + bytes;
    if (next > <u64>h.end) return 0;
    if (atomic.cmpxchg<u32>(at, cur, <u32>next) == cur) return start;
  }
}

@inline export function slot_meta(arena: usize, slot: u32): usize {
  return <usize>changetype<ArenaHeader>(arena).meta + (<usize>slot << 5);
}

@inline export function slot_data(arena: usize, slot: u32): usize {
  const h = changetype<ArenaHeader>(arena);
  return <usize>h.data + <usize>slot * h.slotSize;
}

/**
 * Takes up to n free slots, writes their indices to out[0..k) and returns k. Each slot
 * comes back with reference count 1 and cleared metadata. A short count is counted in
 * allocFailures, never thrown. Thread-safe.
 */
export function arena_alloc_burst(arena: usize, out: usize, n: u32): u32 {
  const k = ring_dequeue_burst(freeRing(arena), out, n);
  for (let i: u32 = 0; i < k; i++) {
    const m = slot_meta(arena, load<u32>(out + (<usize>i << 2)));
    store<u64>(m, 0);
    store<u64>(m, 0, 8);
    store<u64>(m, 0, 16);
    store<i32>(m + REFCOUNT, 1);
    store<u32>(m + offsetof<SlotMeta>('flags'), 0);
  }
  if (k < n) atomic.add<u32>(arena + offsetof<ArenaHeader>('allocFailures'), n - k);
  return k;
}

/** Adds one reference to each of slots[0..n). Thread-safe. */
export function arena_retain_burst(arena: usize, slots: usize, n: u32): void {
  for (let i: u32 = 0; i < n; i++) {
    atomic.add<i32>(slot_meta(arena, load<u32>(slots + (<usize>i << 2))) + REFCOUNT, 1);
  }
}

// Drops one reference from each of slots[0..n) and moves the slots that reached zero
// to the front, slots[0..k); returns k.
function drop_references(arena: usize, slots: usize, n: u32): u32 {
  let zero: u32 = 0;
  for (let i: u32 = 0; i < n; i++) {
    const slot = load<u32>(slots + (<usize>i << 2));
    if (atomic.sub<i32>(slot_meta(arena, slot) + REFCOUNT, 1) == 1) {
      store<u32>(slots + (<usize>zero << 2), slot);
      zero++;
    }
  }
  return zero;
}

/**
 * Drops one reference from each of slots[0..n); slots that reach zero go back to the
 * free list in one burst. The vector is reused as scratch: on return its first
 * entries are the freed slots. Returns how many were freed. Thread-safe.
 */
export function arena_free_burst(arena: usize, slots: usize, n: u32): u32 {
  const freed = drop_references(arena, slots, n);
  // The ring holds every slot, so the enqueue cannot come up short.
  if (freed > 0) ring_enqueue_burst(freeRing(arena), slots, freed);
  return freed;
}

/**
 * Like arena_free_burst, except that the slots whose last reference this was stay
 * with the caller, allocated again (reference count 1), in slots[0..k); returns k.
 * A source refills these slots next instead of cycling through the whole arena, so
 * the slots it writes are still in cache (DPDK's per-core mempool cache, for the same
 * reason). Slots an owner still holds are left to it. Thread-safe: a count of 1 is the
 * caller's own reference, which no other thread may touch (only a holder may retain or
 * release), so the common case — no owner kept the packet — reads the count and
 * writes nothing; only a slot someone else also holds takes an atomic decrement.
 */
export function arena_reclaim_burst(arena: usize, slots: usize, n: u32): u32 {
  let k: u32 = 0;
  for (let i: u32 = 0; i < n; i++) {
    const slot = load<u32>(slots + (<usize>i << 2));
    const count = slot_meta(arena, slot) + REFCOUNT;
    if (atomic.load<i32>(count) != 1) {
      // Shared: drop ours. If the other holder let go meanwhile, it is ours alone again.
      if (atomic.sub<i32>(count, 1) != 1) continue;
      atomic.store<i32>(count, 1);
    }
    store<u32>(slots + (<usize>k << 2), slot);
    k++;
  }
  return k;
}

/** Free slots right now (a snapshot). */
export function arena_free_count(arena: usize): u32 {
  return ring_count(freeRing(arena));
}
