// The packet arena as JavaScript sees it: one shared WebAssembly.Memory, laid out once
// by the core (assembly/arena.ts) and never grown, so typed-array views over it stay
// valid for the arena's life. Per-packet reads and writes of metadata go through the
// long-lived views below (no allocation, no call into WebAssembly); slot allocation and
// freeing are burst calls into the core.

import { NetpdError } from './errors.js';
import { instantiate, probeCore, PAGE, type CoreExports, type Layout } from './core.js';
import { divmod64, remainder } from './u64.js';

export interface ArenaOptions {
  /** Bytes of packet data per slot: a multiple of 64, at least 64. Default 2048. */
  slotSize?: number;
  /** Number of slots. Default 65536. */
  slotCount?: number;
  /** Bytes reserved for tables, programs and burst vectors. Default 16 MiB. */
  controlBytes?: number;
}

export interface ArenaStats {
  slotCount: number;
  free: number;
  inUse: number;
  /** Packets that were longer than a slot and kept only their first slotSize bytes. */
  truncated: number;
  /** Slots requested from an empty free list (requests that came up short). */
  allocFailures: number;
}

/** The slot flag set when a packet was cut to the slot size. */
export const SLOT_TRUNCATED = 1;

const TWO32 = 4294967296;
const NS = 1e9;

export class Arena {
  readonly memory: WebAssembly.Memory;
  /** Bytes of the whole arena memory. */
  readonly bytes: Uint8Array;
  readonly view: DataView;
  /** The arena memory as u32 words (for Atomics and metadata). */
  readonly words: Uint32Array;
  readonly slotSize: number;
  readonly slotCount: number;
  /** @internal */ readonly core: CoreExports;
  /** @internal */ readonly layout: Layout;
  /** @internal */ readonly base: number;
  /** @internal Address of slot 0's metadata; slot i's is metaBase + i * layout.metaSize. */
  readonly metaBase: number;
  /** @internal Address of slot 0's bytes; slot i's are at dataBase + i * slotSize. */
  readonly dataBase: number;
  private readonly metaWords: number;
  private readonly scratch: Uint32Array;

  private constructor(memory: WebAssembly.Memory, core: CoreExports, layout: Layout, base: number) {
    this.memory = memory;
    this.core = core;
    this.layout = layout;
    this.base = base;
    this.bytes = new Uint8Array(memory.buffer);
    this.view = new DataView(memory.buffer);
    this.words = new Uint32Array(memory.buffer);
    this.slotSize = this.view.getUint32(base + layout.arenaSlotSize, true);
    this.slotCount = this.view.getUint32(base + layout.arenaSlotCount, true);
    this.metaBase = this.view.getUint32(base + layout.arenaMeta, true);
    this.dataBase = this.view.getUint32(base + layout.arenaData, true);
    this.metaWords = layout.metaSize >>> 2;
    this.scratch = this.burstVector(1);
  }

  /** Creates an arena with every slot free. Throws EINVAL for impossible sizes. */
  static create(options: ArenaOptions = {}): Arena {
    const slotSize = options.slotSize ?? 2048;
    const slotCount = options.slotCount ?? 65536;
    const controlBytes = options.controlBytes ?? 16 * 1024 * 1024;
    for (const [name, v] of [['slotSize', slotSize], ['slotCount', slotCount], ['controlBytes', controlBytes]] as const) {
      if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new NetpdError('EINVAL', `${name} must be a 32-bit unsigned integer, got ${v}`);
    }
    if (slotSize < 64 || slotSize % 64 !== 0) throw new NetpdError('EINVAL', `slotSize must be a multiple of 64 and at least 64, got ${slotSize}`);
    if (slotCount < 1) throw new NetpdError('EINVAL', `slotCount must be at least 1, got ${slotCount}`);
    const { exports: probe, layout } = probeCore();
    const base = probe.heap_base();
    const size = Number(probe.arena_bytes(slotSize, slotCount, controlBytes));
    const total = base + size;
    if (size === 0 || total > 65536 * PAGE) {
      throw new NetpdError('EINVAL', `an arena of ${slotCount} slots of ${slotSize} bytes with ${controlBytes} control bytes does not fit in 4 GiB of WebAssembly memory`);
    }
    const pages = Math.ceil(total / PAGE);
    const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    const core = instantiate(memory);
    if (core.arena_init(base, slotSize, slotCount, controlBytes) === 0) {
      throw new NetpdError('EINVAL', 'the core refused the arena layout');
    }
    return new Arena(memory, core, layout, base);
  }

  /**
   * Reserves `bytes` of the control region (control plane only), reusing a region a
   * closed dispatcher gave back when one fits. Throws EFULL when it is used up.
   */
  reserve(bytes: number, align = 64): number {
    for (let i = 0; i < this.released.length; i++) {
      const r = this.released[i];
      const start = Math.ceil(r.at / align) * align;
      if (start + bytes > r.at + r.bytes) continue;
      this.released.splice(i, 1);
      if (start > r.at) this.released.push({ at: r.at, bytes: start - r.at });
      if (start + bytes < r.at + r.bytes) this.released.push({ at: start + bytes, bytes: r.at + r.bytes - start - bytes });
      return start;
    }
    const at = this.core.arena_reserve(this.base, bytes, align) >>> 0;
    if (at === 0) throw new NetpdError('EFULL', `the arena's control region cannot hold ${bytes} more bytes; raise controlBytes`);
    return at;
  }

  /**
   * @internal Gives back a region reserve() returned (a closed dispatcher's tables): it
   * is zeroed and later reservations through this Arena object reuse it.
   */
  unreserve(at: number, bytes: number): void {
    this.bytes.fill(0, at, at + bytes);
    this.released.push({ at, bytes });
  }
  private readonly released: { at: number; bytes: number }[] = [];

  /**
   * @internal Per-arena scratch for loading and running BPF outside a dispatcher:
   * a staging area for one program, the validator's masks and 16 words of M[].
   */
  bpfScratch(): { staging: number; masks: number; mem: number } {
    this.bpf ??= { staging: this.reserve(4096 * 8, 64), masks: this.reserve(4096 * 2, 64), mem: this.reserve(64, 64) };
    return this.bpf;
  }
  private bpf: { staging: number; masks: number; mem: number } | undefined;

  /** A vector of n u32 inside the arena, for slot indices. Allocate once and reuse. */
  burstVector(n: number): Uint32Array {
    if (!Number.isInteger(n) || n < 1) throw new NetpdError('EINVAL', `a burst vector needs a positive length, got ${n}`);
    return new Uint32Array(this.memory.buffer, this.reserve(n * 4), n);
  }

  /** @internal The address of a burst vector, checking it lives in this arena. */
  addressOf(vec: Uint32Array, n: number): number {
    if (vec.buffer !== this.bytes.buffer) throw new NetpdError('EINVAL', 'the vector is not inside this arena; use arena.burstVector()');
    if (!Number.isInteger(n) || n < 0 || n > vec.length) throw new NetpdError('EINVAL', `count ${n} is outside the vector's length ${vec.length}`);
    return vec.byteOffset;
  }

  /**
   * Takes up to n free slots into vec[0..k) and returns k (fewer when the arena runs
   * short; that is counted, not thrown). Each slot starts with reference count 1.
   */
  allocBurst(vec: Uint32Array, n: number): number {
    return this.core.arena_alloc_burst(this.base, this.addressOf(vec, n), n);
  }

  /**
   * Drops one reference from each of vec[0..n); slots at zero return to the free list.
   * The vector's contents are consumed (reused as scratch). Returns how many were freed.
   */
  freeBurst(vec: Uint32Array, n: number): number {
    return this.core.arena_free_burst(this.base, this.addressOf(vec, n), n);
  }

  /** Adds one reference to each of vec[0..n). */
  retainBurst(vec: Uint32Array, n: number): void {
    this.core.arena_retain_burst(this.base, this.addressOf(vec, n), n);
  }

  /** Adds one reference to a slot. */
  retain(slot: number): void {
    Atomics.add(this.words, this.metaIndex(slot) + (this.layout.metaRefCount >>> 2), 1);
  }

  /** Drops one reference from a slot, freeing it at zero. */
  release(slot: number): void {
    this.scratch[0] = slot;
    this.core.arena_free_burst(this.base, this.scratch.byteOffset, 1);
  }

  /**
   * Maps every page of the arena's memory now (once per arena), so that no packet pays
   * for a page fault later. WebAssembly memory is mapped lazily; a live source calls
   * this before its first receive. An atomic add of zero writes nothing any other
   * thread could see, so it is safe while slots are in use.
   */
  prefault(): void {
    if (this.prefaulted) return;
    const w = this.words;
    for (let i = 0; i < w.length; i += 1024) Atomics.add(w, i, 0);
    this.prefaulted = true;
  }
  private prefaulted = false;

  /** Free slots right now. */
  get free(): number {
    return this.core.arena_free_count(this.base);
  }

  get stats(): ArenaStats {
    const free = this.free;
    return {
      slotCount: this.slotCount,
      free,
      inUse: this.slotCount - free,
      truncated: Atomics.load(this.words, (this.base + this.layout.arenaTruncated) >>> 2),
      allocFailures: Atomics.load(this.words, (this.base + this.layout.arenaAllocFailures) >>> 2),
    };
  }

  private metaIndex(slot: number): number {
    return (this.metaBase >>> 2) + slot * this.metaWords;
  }

  /** Byte offset in `bytes` where a slot's packet data starts. */
  dataOffset(slot: number): number {
    return this.dataBase + slot * this.slotSize;
  }

  /**
   * Records a packet's metadata. `capLen` is the captured length at the source; above
   * slotSize the slot keeps slotSize bytes (the caller copies only those), is flagged
   * truncated and counted. Timestamps are seconds and nanoseconds since the epoch.
   */
  setPacket(slot: number, capLen: number, wireLen: number, tsSec: number, tsNsec: number, ifIndex: number): void {
    const m = this.metaIndex(slot);
    const L = this.layout;
    const w = this.words;
    let flags = 0;
    if (capLen > this.slotSize) {
      capLen = this.slotSize;
      flags = SLOT_TRUNCATED;
      Atomics.add(w, (this.base + L.arenaTruncated) >>> 2, 1);
    }
    w[m + (L.metaCapLen >>> 2)] = capLen;
    w[m + (L.metaWireLen >>> 2)] = wireLen;
    w[m + (L.metaIfIndex >>> 2)] = ifIndex;
    w[m + (L.metaFlags >>> 2)] = flags;
    // ns = sec * 1e9 + nsec, split into 32-bit halves with exact double arithmetic.
    const sh = Math.floor(tsSec / 65536);
    const a = (tsSec - sh * 65536) * NS + tsNsec;
    const b = sh * NS;
    const bLo = b % 65536;
    const c = bLo * 65536 + a;
    const lo = c % TWO32;
    const t = m + (L.metaTsNs >>> 2);
    w[t] = lo;
    w[t + 1] = (b - bLo) / 65536 + (c - lo) / TWO32;
  }

  capLen(slot: number): number { return this.words[this.metaIndex(slot) + (this.layout.metaCapLen >>> 2)]; }
  wireLen(slot: number): number { return this.words[this.metaIndex(slot) + (this.layout.metaWireLen >>> 2)]; }
  ifIndex(slot: number): number { return this.words[this.metaIndex(slot) + (this.layout.metaIfIndex >>> 2)]; }
  flags(slot: number): number { return this.words[this.metaIndex(slot) + (this.layout.metaFlags >>> 2)]; }
  refCount(slot: number): number { return Atomics.load(this.words, this.metaIndex(slot) + (this.layout.metaRefCount >>> 2)) | 0; }

  /** Whole seconds of a slot's timestamp (no allocation). */
  timestampSec(slot: number): number { return this.divideTimestamp(slot, true); }
  /** Nanoseconds within the second of a slot's timestamp (no allocation). */
  timestampNsec(slot: number): number { return this.divideTimestamp(slot, false); }
  /** A slot's timestamp as nanoseconds since the epoch (allocates a bigint). */
  timestampNs(slot: number): bigint {
    const t = this.metaIndex(slot) + (this.layout.metaTsNs >>> 2);
    return (BigInt(this.words[t + 1]) << 32n) | BigInt(this.words[t]);
  }
  /** A slot's timestamp as seconds and nanoseconds (allocates). */
  timestamp(slot: number): { sec: number; nsec: number } {
    return { sec: this.timestampSec(slot), nsec: this.timestampNsec(slot) };
  }

  private divideTimestamp(slot: number, quotient: boolean): number {
    const t = this.metaIndex(slot) + (this.layout.metaTsNs >>> 2);
    const sec = divmod64(this.words[t + 1], this.words[t], NS);
    return quotient ? sec : remainder;
  }
}
