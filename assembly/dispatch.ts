// The packet dispatcher's data plane: the set of registered BPF descriptions, the
// classification of a burst, and the grouping of the burst by owner.
//
// Descriptions live in one contiguous program region in registration order; filter
// id f is the f-th of them, and the PID table maps it to the owner's stable entry
// index. Removing a description closes the gap (programs and filter entries move
// down, the PID table renumbers), so classification walks a dense array. The first
// registered description that accepts a packet owns it (OSKit's pd gives no order;
// we fix one so that overlapping descriptions behave predictably).
//
// dispatch_classify takes a burst of slot indices and, in one call, produces the
// burst regrouped by owner: `order` holds the slots with each owner's packets
// together and in arrival order, and `runs` lists (owner, start, count, bytes) per
// owner present, in order of each owner's first packet. Unmatched packets form a run
// whose owner is `filterCap` (the default netio). JavaScript then makes one call per
// run, never one per packet. Per-owner scratch (stamp, run) is keyed by entry index
// and tagged with a burst stamp so nothing needs clearing between bursts.
//
//   Dispatcher header (128 bytes, 64-aligned), then its arrays in this order:
//   FilterEntry[filterCap] {prog u32, len u32} · programs u64[progCap] · PID table ·
//   results u32[burstCap] · order u32[burstCap] · Run[burstCap] · ownerStamp u32[filterCap+1] ·
//   ownerRun u32[filterCap+1] · mem u32[16] · staging u64[4096] · masks u16[4096]

import { ArenaHeader, SlotMeta, slot_meta } from './arena';
import { bpf_run, BPF_MAXINSNS } from './bpf';
import { PidTable, pid_bytes, pid_init, pid_alloc, pid_free, pid_fid, pid_index_of_fid, PID_NONE } from './pidtable';

@unmanaged export class Dispatcher {
  arena: u32;
  filterCap: u32;
  count: u32;
  filters: u32;
  programs: u32;
  progCap: u32;
  progUsed: u32;
  pids: u32;
  burstCap: u32;
  results: u32;
  order: u32;
  runs: u32;
  runCount: u32;
  stamp: u32;
  ownerStamp: u32;
  ownerRun: u32;
  mem: u32;
  staging: u32;
  masks: u32;
}

@unmanaged export class Run {
  owner: u32;
  start: u32;
  count: u32;
  bytes: u32;
}

@inline const HEADER: usize = 128;
@inline const RUN: usize = 16;
@inline function align(x: usize): usize { return (x + 63) & ~63; }

/** Bytes a dispatcher with these capacities needs. */
export function dispatch_bytes(filterCap: u32, progCap: u32, burstCap: u32): usize {
  return HEADER
    + align(<usize>filterCap * 8) + align(<usize>progCap * 8) + align(pid_bytes(filterCap))
    + align(<usize>burstCap * 4) * 2 + align(<usize>burstCap * RUN)
    + align(<usize>(filterCap + 1) * 4) * 2 + 64
    + <usize>BPF_MAXINSNS * 8 + <usize>BPF_MAXINSNS * 2;
}

/** Lays out an empty dispatcher at `d` (64-aligned) over `arena`. Returns false on bad capacities. */
export function dispatch_init(d: usize, arena: usize, filterCap: u32, progCap: u32, burstCap: u32): bool {
  if (filterCap == 0 || burstCap == 0 || progCap == 0) return false;
  const h = changetype<Dispatcher>(d);
  let at = d + HEADER;
  h.arena = <u32>arena;
  h.filterCap = filterCap;
  h.count = 0;
  h.filters = <u32>at; at += align(<usize>filterCap * 8);
  h.programs = <u32>at; at += align(<usize>progCap * 8);
  h.progCap = progCap;
  h.progUsed = 0;
  h.pids = <u32>at; at += align(pid_bytes(filterCap));
  if (!pid_init(h.pids, filterCap)) return false;
  h.burstCap = burstCap;
  h.results = <u32>at; at += align(<usize>burstCap * 4);
  h.order = <u32>at; at += align(<usize>burstCap * 4);
  h.runs = <u32>at; at += align(<usize>burstCap * RUN);
  h.runCount = 0;
  h.stamp = 0;
  h.ownerStamp = <u32>at; at += align(<usize>(filterCap + 1) * 4);
  h.ownerRun = <u32>at; at += align(<usize>(filterCap + 1) * 4);
  memory.fill(h.ownerStamp, 0, <usize>(filterCap + 1) * 4);
  h.mem = <u32>at; at += 64;
  h.staging = <u32>at; at += <usize>BPF_MAXINSNS * 8;
  h.masks = <u32>at;
  return true;
}

/**
 * Appends the validated program of `len` instructions waiting in the staging area as
 * the lowest-priority description. Returns its pid, or PID_NONE when the filter table
 * or the program region is full. The caller validates first (bpf_validate). A filter
 * type whose descriptions live elsewhere (DPF's trie) adds with len 0: it gets a pid
 * and an entry index, and no program.
 */
export function dispatch_add(d: usize, len: u32): u32 {
  const h = changetype<Dispatcher>(d);
  if (h.count >= h.filterCap || <u64>h.progUsed + len > <u64>h.progCap) return PID_NONE;
  const fid = h.count;
  const pid = pid_alloc(h.pids, fid);
  if (pid == PID_NONE) return PID_NONE;
  const prog = <usize>h.programs + (<usize>h.progUsed << 3);
  memory.copy(prog, h.staging, <usize>len << 3);
  const e = <usize>h.filters + (<usize>fid << 3);
  store<u32>(e, h.progUsed);
  store<u32>(e, len, 4);
  h.progUsed += len;
  h.count++;
  return pid;
}

/** Removes the description of `pid`. Returns false if the pid is unknown or stale. */
export function dispatch_remove(d: usize, pid: u32): bool {
  const h = changetype<Dispatcher>(d);
  const fid = pid_fid(h.pids, pid);
  if (fid == PID_NONE) return false;
  const e = <usize>h.filters + (<usize>fid << 3);
  const start = load<u32>(e);
  const len = load<u32>(e, 4);
  const tail = h.progUsed - start - len;
  memory.copy(<usize>h.programs + (<usize>start << 3), <usize>h.programs + (<usize>(start + len) << 3), <usize>tail << 3);
  for (let f = fid + 1; f < h.count; f++) {
    const src = <usize>h.filters + (<usize>f << 3);
    store<u32>(src - 8, load<u32>(src) - len);
    store<u32>(src - 8, load<u32>(src, 4), 4);
  }
  h.progUsed -= len;
  h.count--;
  pid_free(h.pids, pid);
  return true;
}

/** Owner entry index of the first description accepting the packet, or filterCap. */
@inline function classify_one(h: Dispatcher, pkt: usize, capLen: u32, wireLen: u32): u32 {
  const count = h.count;
  const filters = <usize>h.filters;
  const programs = <usize>h.programs;
  const mem = <usize>h.mem;
  for (let f: u32 = 0; f < count; f++) {
    const e = filters + (<usize>f << 3);
    if (bpf_run(programs + (<usize>load<u32>(e) << 3), pkt, capLen, wireLen, mem) != 0) {
      return pid_index_of_fid(h.pids, f);
    }
  }
  return h.filterCap;
}

/**
 * Classifies slots[0..n) (n <= burstCap) with the interpreter and regroups them by
 * owner into `order` and `runs`. Returns the number of runs.
 */
export function dispatch_classify(d: usize, slots: usize, n: u32): u32 {
  const h = changetype<Dispatcher>(d);
  const arena = <usize>h.arena;
  const a = changetype<ArenaHeader>(arena);
  const data = <usize>a.data;
  const slotSize = <usize>a.slotSize;
  const results = <usize>h.results;
  if (n > h.burstCap) n = h.burstCap;
  for (let i: u32 = 0; i < n; i++) {
    const slot = load<u32>(slots + (<usize>i << 2));
    const m = changetype<SlotMeta>(slot_meta(arena, slot));
    store<u32>(results + (<usize>i << 2), classify_one(h, data + <usize>slot * slotSize, m.capLen, m.wireLen));
  }
  return dispatch_group(d, slots, n, false);
}

/**
 * Regroups slots[0..n) by the owners another classifier (a compiled module, the DPF
 * trie) wrote to `results`: entry indices, anything at or above filterCap meaning
 * "no owner" — or, with `fids`, filter ids, anything at or above the description
 * count meaning "no owner". Fills `order` and `runs` as dispatch_classify does and
 * returns the number of runs.
 */
export function dispatch_group(d: usize, slots: usize, n: u32, fids: bool): u32 {
  const h = changetype<Dispatcher>(d);
  const arena = <usize>h.arena;
  const results = <usize>h.results;
  const runs = <usize>h.runs;
  const ownerStamp = <usize>h.ownerStamp;
  const ownerRun = <usize>h.ownerRun;
  const filterCap = h.filterCap;
  const count = h.count;
  if (n > h.burstCap) n = h.burstCap;
  let stamp = h.stamp + 1;
  if (stamp == 0) {
    memory.fill(ownerStamp, 0, <usize>(filterCap + 1) << 2);
    stamp = 1;
  }
  h.stamp = stamp;
  let runCount: u32 = 0;
  for (let i: u32 = 0; i < n; i++) {
    let owner = load<u32>(results + (<usize>i << 2));
    if (fids) owner = owner < count ? pid_index_of_fid(h.pids, owner) : filterCap;
    else if (owner > filterCap) owner = filterCap;
    store<u32>(results + (<usize>i << 2), owner);
    let run: usize;
    if (load<u32>(ownerStamp + (<usize>owner << 2)) != stamp) {
      store<u32>(ownerStamp + (<usize>owner << 2), stamp);
      store<u32>(ownerRun + (<usize>owner << 2), runCount);
      run = runs + <usize>runCount * RUN;
      const r = changetype<Run>(run);
      r.owner = owner;
      r.count = 0;
      r.bytes = 0;
      runCount++;
    } else {
      run = runs + <usize>load<u32>(ownerRun + (<usize>owner << 2)) * RUN;
    }
    const r = changetype<Run>(run);
    r.count++;
    r.bytes += changetype<SlotMeta>(slot_meta(arena, load<u32>(slots + (<usize>i << 2)))).wireLen;
  }
  let start: u32 = 0;
  for (let j: u32 = 0; j < runCount; j++) {
    const r = changetype<Run>(runs + <usize>j * RUN);
    r.start = start;
    start += r.count;
  }
  // Scatter, using each run's start as its fill cursor, then rewind the cursors.
  const order = <usize>h.order;
  for (let i: u32 = 0; i < n; i++) {
    const owner = load<u32>(results + (<usize>i << 2));
    const r = changetype<Run>(runs + <usize>load<u32>(ownerRun + (<usize>owner << 2)) * RUN);
    store<u32>(order + (<usize>r.start << 2), load<u32>(slots + (<usize>i << 2)));
    r.start++;
  }
  for (let j: u32 = 0; j < runCount; j++) {
    const r = changetype<Run>(runs + <usize>j * RUN);
    r.start -= r.count;
  }
  h.runCount = runCount;
  return runCount;
}
