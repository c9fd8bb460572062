// Loading the WebAssembly core. The module is compiled once per process; each arena
// gets its own instance over its own shared memory. The core keeps no state of its
// own, so any number of instances (one per worker thread, later) can share a memory.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { NetpdError } from './errors.js';

/** The raw exports of wasm/netpd.wasm (addresses and counts are plain numbers). */
export interface CoreExports {
  heap_base(): number;
  arena_bytes(slotSize: number, slotCount: number, controlBytes: number): bigint;
  arena_init(arena: number, slotSize: number, slotCount: number, controlBytes: number): number;
  /** u32 results arrive as signed i32: apply >>> 0 where the high bit can be set. */
  arena_reserve(arena: number, bytes: number, align: number): number;
  arena_alloc_burst(arena: number, out: number, n: number): number;
  arena_retain_burst(arena: number, slots: number, n: number): void;
  arena_free_burst(arena: number, slots: number, n: number): number;
  arena_reclaim_burst(arena: number, slots: number, n: number): number;
  arena_free_count(arena: number): number;
  ring_bytes(size: number): number;
  ring_init(ring: number, size: number, flags: number): number;
  ring_count(ring: number): number;
  ring_free_count(ring: number): number;
  ring_enqueue_burst(ring: number, src: number, n: number): number;
  ring_enqueue_bulk(ring: number, src: number, n: number): number;
  ring_dequeue_burst(ring: number, dst: number, n: number): number;
  ring_dequeue_bulk(ring: number, dst: number, n: number): number;
  bpf_validate(prog: number, len: number, scratch: number): number;
  bpf_decode(prog: number, len: number): void;
  bpf_run(prog: number, pkt: number, buflen: number, wirelen: number, mem: number): number;
  bpf_run_burst(arena: number, prog: number, slots: number, n: number, out: number, mem: number): number;
  pid_index(table: number, pid: number): number;
  dispatch_bytes(filterCap: number, progCap: number, burstCap: number): number;
  dispatch_init(d: number, arena: number, filterCap: number, progCap: number, burstCap: number): number;
  dispatch_add(d: number, len: number): number;
  dispatch_remove(d: number, pid: number): number;
  dispatch_classify(d: number, slots: number, n: number): number;
  dispatch_group(d: number, slots: number, n: number, fids: number): number;
  layout_table(out: number): number;
  dpf_bytes(maxNodes: number, maxEdges: number, maxFields: number): number;
  dpf_init(trie: number, maxNodes: number, maxEdges: number, maxFields: number): number;
  dpf_insert(trie: number, staging: number, atomCount: number, owner: number): number;
  dpf_remove(trie: number, staging: number, atomCount: number): number;
  dpf_field_find(trie: number, atom: number): number;
  dpf_match(trie: number, pkt: number, capLen: number): number;
  dpf_classify_burst(trie: number, arena: number, slots: number, n: number, results: number): number;
  dpf_hash(a: number, b: number, c: number): number;
  dpf_layout_table(out: number): number;
}

/** Field offsets read from the core once (assembly/layout.ts, same order). */
const LAYOUT_FIELDS = [
  'arenaSlotSize', 'arenaSlotCount', 'arenaMeta', 'arenaData', 'arenaTruncated', 'arenaAllocFailures',
  'metaSize', 'metaCapLen', 'metaWireLen', 'metaTsNs', 'metaIfIndex', 'metaFlowHash', 'metaRefCount', 'metaFlags',
  'dispCount', 'dispOrder', 'dispRuns', 'dispMem', 'dispStaging', 'dispMasks', 'dispFilterCap', 'dispResults',
  'runSize', 'runOwner', 'runStart', 'runCount', 'runBytes',
] as const;
export type Layout = Record<(typeof LAYOUT_FIELDS)[number], number>;

export const PAGE = 65536;
export const PID_NONE = 0xffffffff;

let module: WebAssembly.Module | undefined;
let probe: { exports: CoreExports; layout: Layout } | undefined;

function coreModule(): WebAssembly.Module {
  if (module) return module;
  const url = new URL('../wasm/netpd.wasm', import.meta.url);
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    bytes = new Uint8Array(readFileSync(fileURLToPath(url)));
  } catch (cause) {
    throw new NetpdError('ENOTSUP', `the WebAssembly core ${fileURLToPath(url)} is missing; run "npm run build"`, { cause });
  }
  module = new WebAssembly.Module(bytes);
  return module;
}

/** Instantiates the core over `memory` (a shared WebAssembly.Memory). */
export function instantiate(memory: WebAssembly.Memory): CoreExports {
  const instance = new WebAssembly.Instance(coreModule(), { env: { memory, abort: coreAbort } });
  return instance.exports as unknown as CoreExports;
}

function coreAbort(): never {
  throw new NetpdError('EINVAL', 'the WebAssembly core aborted');
}

/**
 * An instance over a one-page scratch memory, for the core's pure functions (sizes)
 * and its layout table, which are needed before an arena's memory can be sized.
 */
export function probeCore(): { exports: CoreExports; layout: Layout } {
  if (probe) return probe;
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
  const exports = instantiate(memory);
  const out = exports.heap_base();
  const n = exports.layout_table(out);
  const table = new Uint32Array(memory.buffer, out, n);
  if (n !== LAYOUT_FIELDS.length) throw new NetpdError('ENOTSUP', `core layout table has ${n} fields, bindings expect ${LAYOUT_FIELDS.length}: rebuild`);
  const layout = Object.fromEntries(LAYOUT_FIELDS.map((name, i) => [name, table[i]])) as Layout;
  probe = { exports, layout };
  return probe;
}
