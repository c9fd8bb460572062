// The PID table: the OSKit dispatcher's map between the ids a filter module hands out
// (filter ids, "fids": dense, and renumbered when a filter is removed) and the ids
// callers hold (packet-dispatcher ids, "pids": stable for an owner's lifetime).
//
// A pid is (generation << 20) | index. The index names an entry that also keys the
// dispatcher's per-owner arrays; the generation, bumped each time an entry is freed,
// makes an id that was unregistered stop working instead of silently naming the next
// owner to get that entry. Free entries form a FIFO list, so the index just released
// is the last to be reused. Generations run 1..2047, keeping pids positive int32s.
//
//   PidTable header (16 bytes), then PidEntry[cap], then u32 fidToIndex[cap]
//   ┌──────────┬──────────┬──────────┬──────────┐
//   │ cap u32  │ count u32│ freeHead │ freeTail │
//   └──────────┴──────────┴──────────┴──────────┘
//   PidEntry: fid u32 | generation u32 | nextFree u32 | used u32

@unmanaged export class PidTable {
  cap: u32;
  count: u32;
  freeHead: u32;
  freeTail: u32;
}

@unmanaged export class PidEntry {
  fid: u32;
  generation: u32;
  nextFree: u32;
  used: u32;
}

export const PID_NONE: u32 = 0xffffffff;
export const PID_INDEX_BITS: u32 = 20;
export const PID_MAX_CAP: u32 = 1 << PID_INDEX_BITS;
@inline const INDEX_MASK: u32 = PID_MAX_CAP - 1;
@inline const GEN_MAX: u32 = 2047;
@inline const HEADER: usize = 16;
@inline const ENTRY: usize = 16;

@inline function entry(t: usize, index: u32): PidEntry {
  return changetype<PidEntry>(t + HEADER + <usize>index * ENTRY);
}
@inline function fid_slot(t: usize, fid: u32): usize {
  return t + HEADER + <usize>changetype<PidTable>(t).cap * ENTRY + (<usize>fid << 2);
}

/** Bytes a table of `cap` entries needs (cap <= 2^20). */
export function pid_bytes(cap: u32): usize {
  return HEADER + <usize>cap * (ENTRY + 4);
}

/** Lays out an empty table of `cap` entries at `t`. Returns false if cap is out of range. */
export function pid_init(t: usize, cap: u32): bool {
  if (cap == 0 || cap > PID_MAX_CAP) return false;
  const h = changetype<PidTable>(t);
  h.cap = cap;
  h.count = 0;
  for (let i: u32 = 0; i < cap; i++) {
    const e = entry(t, i);
    e.fid = PID_NONE;
    e.generation = 1;
    e.nextFree = i + 1 < cap ? i + 1 : PID_NONE;
    e.used = 0;
    store<u32>(fid_slot(t, i), PID_NONE);
  }
  h.freeHead = 0;
  h.freeTail = cap - 1;
  return true;
}

/** Takes a free entry for filter id `fid`; returns the new pid, or PID_NONE when full. */
export function pid_alloc(t: usize, fid: u32): u32 {
  const h = changetype<PidTable>(t);
  const index = h.freeHead;
  if (index == PID_NONE || fid >= h.cap) return PID_NONE;
  const e = entry(t, index);
  h.freeHead = e.nextFree;
  if (h.freeHead == PID_NONE) h.freeTail = PID_NONE;
  e.nextFree = PID_NONE;
  e.used = 1;
  e.fid = fid;
  store<u32>(fid_slot(t, fid), index);
  h.count++;
  return (e.generation << PID_INDEX_BITS) | index;
}

/** The entry index a live pid names, or PID_NONE for an unknown or stale pid. */
export function pid_index(t: usize, pid: u32): u32 {
  const index = pid & INDEX_MASK;
  if (index >= changetype<PidTable>(t).cap) return PID_NONE;
  const e = entry(t, index);
  return e.used != 0 && e.generation == (pid >> PID_INDEX_BITS) ? index : PID_NONE;
}

/** The filter id of a live pid, or PID_NONE. */
export function pid_fid(t: usize, pid: u32): u32 {
  const index = pid_index(t, pid);
  return index == PID_NONE ? PID_NONE : entry(t, index).fid;
}

/** The entry index that filter id `fid` belongs to (the hot-path translation). */
@inline export function pid_index_of_fid(t: usize, fid: u32): u32 {
  return load<u32>(fid_slot(t, fid));
}

/**
 * Frees a live pid and returns its filter id (PID_NONE if the pid is unknown or stale).
 * Filter ids above it are renumbered down by one, as the filter module compacts them.
 */
export function pid_free(t: usize, pid: u32): u32 {
  const h = changetype<PidTable>(t);
  const index = pid_index(t, pid);
  if (index == PID_NONE) return PID_NONE;
  const e = entry(t, index);
  const fid = e.fid;
  for (let f = fid + 1; f < h.count; f++) {
    const moved = load<u32>(fid_slot(t, f));
    store<u32>(fid_slot(t, f - 1), moved);
    entry(t, moved).fid = f - 1;
  }
  store<u32>(fid_slot(t, h.count - 1), PID_NONE);
  h.count--;
  e.used = 0;
  e.fid = PID_NONE;
  e.generation = e.generation >= GEN_MAX ? 1 : e.generation + 1;
  e.nextFree = PID_NONE;
  if (h.freeTail == PID_NONE) h.freeHead = index;
  else entry(t, h.freeTail).nextFree = index;
  h.freeTail = index;
  return fid;
}
