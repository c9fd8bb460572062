// What every compiled classifier shares: where a burst's packets are in the arena, the
// memory it imports, and the loop that runs over a burst of slots.
//
// A compiled module classifies a whole burst in one call, never one packet at a time,
// so the loop over the slots is generated too. Both compilers (bpf-jit.ts, dpf-jit.ts)
// put the same loop around their own per-packet code: read the slot index, find its
// metadata and bytes (the layout's addresses are constants folded into the loads),
// store what the packet code leaves on the stack as the slot's result, and count the
// matches.

import { NetpdError } from '../errors.js';
import type { Arena } from '../arena.js';
import { PAGE } from '../core.js';
import { CodeBuilder, type MemoryLimits } from './wasm.js';

/** Where classify finds a burst's packets in the arena: absolute addresses and byte offsets. */
export interface BurstLayout {
  /** Address of slot 0's metadata. */
  meta: number;
  /** Address of slot 0's packet bytes. */
  data: number;
  /** Bytes of packet data per slot. */
  slotSize: number;
  /** Bytes of metadata per slot. */
  metaSize: number;
  /** Offset of the captured length (u32) in a slot's metadata. */
  capLen: number;
  /** Offset of the wire length (u32) in a slot's metadata. */
  wireLen: number;
}

/** The burst layout of an arena (read once from its header). */
export function burstLayout(arena: Arena): BurstLayout {
  const L = arena.layout;
  return { meta: arena.metaBase, data: arena.dataBase, slotSize: arena.slotSize, metaSize: L.metaSize, capLen: L.metaCapLen, wireLen: L.metaWireLen };
}

/**
 * Memory limits that link with an arena's memory. The maximum is the largest possible,
 * not the arena's: an import links with any shared memory at least `initial` pages long
 * whose own maximum is no larger, so the module does not depend on how the arena was sized.
 */
export function arenaMemoryLimits(arena: Arena): MemoryLimits {
  return { initial: arena.memory.buffer.byteLength / PAGE, maximum: 65536 };
}

/** Throws EINVAL for a layout that is not u32 addresses and offsets, or whose metadata fields lie past 4 GiB. */
export function checkBurstLayout(layout: BurstLayout): void {
  for (const field of ['meta', 'data', 'slotSize', 'metaSize', 'capLen', 'wireLen'] as const) {
    const v = layout[field];
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new NetpdError('EINVAL', `burst layout field ${field} must be a u32, got ${v}`);
  }
  if (layout.meta + Math.max(layout.capLen, layout.wireLen) > 0xfffffffc) throw new NetpdError('EINVAL', 'burst layout: slot metadata lies past 4 GiB');
}

/** Locals of the burst loop that the per-packet code reads. */
export interface BurstPacket {
  /** Address of the packet's bytes. */
  pkt: number;
  /** Captured length. */
  buflen: number;
  /** Length on the wire (0 unless the loop was asked to load it). */
  wirelen: number;
}

export interface BurstLoopParts {
  /** Also load each packet's wire length (only BPF's `len` needs it). */
  wireLen: boolean;
  /** Emits the code that leaves the packet's u32 result on the stack. */
  packet: (c: CodeBuilder, p: BurstPacket) => void;
  /** Emits the code that turns the result (in local `result`) into 1 for a match, 0 otherwise. */
  matched: (c: CodeBuilder, result: number) => void;
}

/**
 * `(slots, n, results) -> matched`: for each of the n u32 slot indices at `slots`,
 * runs the packet code and stores its result at results + 4i; returns how many matched.
 */
export function burstLoop(L: BurstLayout, parts: BurstLoopParts): CodeBuilder {
  const SLOTS = 0, N = 1, RESULTS = 2;
  const c = new CodeBuilder(['i32', 'i32', 'i32'], ['i32']);
  const slot = c.addLocal('i32');
  const p: BurstPacket = { pkt: c.addLocal('i32'), buflen: c.addLocal('i32'), wirelen: c.addLocal('i32') };
  const result = c.addLocal('i32');
  const matched = c.addLocal('i32');
  c.block().localGet(N).i32Eqz().brIf(0).loop();
  c.localGet(SLOTS).i32Load().localTee(slot).i32Const(L.metaSize).i32Mul();
  if (parts.wireLen) {
    const m = c.addLocal('i32');
    c.localTee(m).i32Load(L.meta + L.capLen).localSet(p.buflen);
    c.localGet(m).i32Load(L.meta + L.wireLen).localSet(p.wirelen);
  } else {
    c.i32Load(L.meta + L.capLen).localSet(p.buflen);
  }
  c.localGet(slot).i32Const(L.slotSize).i32Mul().i32Const(L.data).i32Add().localSet(p.pkt);
  c.localGet(RESULTS);
  parts.packet(c, p);
  c.localTee(result).i32Store();
  c.localGet(matched);
  parts.matched(c, result);
  c.i32Add().localSet(matched);
  c.localGet(SLOTS).i32Const(4).i32Add().localSet(SLOTS);
  c.localGet(RESULTS).i32Const(4).i32Add().localSet(RESULTS);
  c.localGet(N).i32Const(1).i32Sub().localTee(N).brIf(0);
  c.end().end().localGet(matched);
  return c;
}
