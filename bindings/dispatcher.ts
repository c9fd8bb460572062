// The OSKit packet dispatcher over the arena.
//
// create() lays out the dispatcher's tables in the arena's control region: the
// description set and program memory, the PID table, and the per-burst arrays (see
// assembly/dispatch.ts). A burst of slots is classified and regrouped by owner in ONE
// call into the core; JavaScript then walks the runs, calling pushBatch once per owner
// run, or push once per packet for owners that only have push. The Packet and
// PacketBatch handed out are reused cursors, so dispatch allocates nothing per packet.
//
// Accounting: every packet that comes in is either delivered to an owner or the
// default netio, or dropped with a reason: `nomatch` (no description matched and
// there is no default netio), `owner-error` (the netio threw; an EOWNER NetpdError
// carrying what it threw is emitted as 'error' with the owner — or, with no listener,
// the owner's first failure becomes a process warning (events.ts) — and dispatch goes
// on), `unregistered` (its owner
// was unregistered by a callback while the burst was being delivered). So
// `in = delivered + dropped` holds whenever no dispatch is running.
//
// Ownership: push and pushBatch borrow packets. The dispatcher takes no reference;
// whoever put the slots in (a source, or the caller) still holds them and frees them
// after dispatch returns. An owner keeps a packet by retaining it.
//
// Filter types: 'bpf' descriptions are classic BPF programs (or expressions compiled to
// them), tried in registration order — the first that accepts a packet wins. 'dpf'
// descriptions are DPF atom lists (or expressions compiled to them, possibly several
// per owner) merged into one trie (assembly/dpf.ts): the most specific description —
// the longest matching path — wins, and equal descriptions are refused (EDUPDESC).
//
// Compiled code: with `jit` (the default) the rule set is also compiled to a
// WebAssembly module that classifies a whole burst (bindings/jit/). Compilation is
// lazy and coalesced (jit/lazy.ts): registering marks the code stale, and the
// interpreter — the reference the compiled code is tested against — runs until the new
// module is ready. For DPF only a change of the trie's shape needs new code; an owner
// added under an existing hash node is data the compiled code already reads.
//
// Registering and unregistering inside a netio callback is safe: changes apply
// from the next burst; packets of the current burst classified to an owner that is
// gone by the time they would be delivered are dropped as `unregistered`.
//
// Lifetime: close() unregisters every owner, drops the compiled code and gives the
// dispatcher's tables back to the arena's control region (a later dispatcher on the
// same arena reuses them); every later call but stats() is ECLOSED.

import { EventEmitter } from 'node:events';
import { NetpdError } from './errors.js';
import { emitError } from './events.js';
import { Arena } from './arena.js';
import { PID_NONE } from './core.js';
import { loadProgram, toProgram, isDddText, type BpfProgram } from './bpf.js';
import { Packet, PacketBatch } from './packet.js';
import { toNetio, type Netio, type NetioLike } from './netio.js';
import { compileFilter, linkTypeValue } from './filter/compile.js';
import { canonicalDescription, descriptionKey, type CanonicalAtom, type DpfDescription } from './dpf/description.js';
import { compileDpf } from './dpf/compile.js';
import { DpfTrie } from './dpf/trie.js';
import { LazyModule } from './jit/lazy.js';
import { bpfModuleBytes } from './jit/bpf-jit.js';
import { burstLayout, arenaMemoryLimits } from './jit/burst.js';
import { dpfModuleBytes } from './jit/dpf-jit.js';

export type FilterType = 'bpf' | 'dpf';
/**
 * For 'bpf': a pcap-filter expression, a classic BPF program, or tcpdump -ddd text.
 * For 'dpf': a pcap-filter expression (compiled to one or more DPF descriptions), a DPF
 * description, or an array of descriptions (alternatives for one owner).
 */
export type Description = BpfProgram | string | DpfDescription | readonly DpfDescription[];
export type DropReason = 'nomatch' | 'owner-error' | 'unregistered' | 'noslot' | 'kernel';

export interface DispatcherOptions {
  /** The description format: 'bpf' (classic BPF, first match wins) or 'dpf' (merged trie, most specific wins). Default 'bpf'. */
  filterType?: FilterType;
  /** Compile the rule set to WebAssembly (lazily; the interpreter runs meanwhile). Default true. */
  jit?: boolean;
  /**
   * Capacities of the DPF trie: trie nodes (one per atom not shared with another
   * owner's path; default 8 per owner), edges (default = nodes), distinct fields
   * (default 4096). About 48 bytes per node of the arena's control region.
   */
  dpf?: { maxNodes?: number; maxEdges?: number; maxFields?: number };
  /** Where packets no description matches go; without one they are dropped as `nomatch`. */
  defaultNetio?: NetioLike | null;
  /** The arena packets live in; a default-sized one is created when omitted. */
  arena?: Arena;
  /** Most owners registered at once. Default 4096. */
  maxOwners?: number;
  /** Total instructions of all registered programs. Default 131072. */
  programCapacity?: number;
  /** Most packets classified per core call. Default 256. */
  burstSize?: number;
  /**
   * Link type of the packets, as a LINKTYPE_ number or libpcap's name (see compileFilter):
   * expressions registered here are compiled for it. Default EN10MB (Ethernet).
   */
  linkType?: number | string;
}

export interface RegisterOptions {
  /** A name for counters and errors. Default `owner-<id>`. */
  name?: string;
}

export interface OwnerStats {
  id: number;
  name: string;
  packets: number;
  bytes: number;
  errors: number;
}

export interface DispatcherStats {
  /** The compiled classifier: whether it is on, in use now, and how many modules were compiled. */
  jit: { enabled: boolean; active: boolean; compiles: number };
  in: number;
  delivered: number;
  dropped: Record<DropReason, number>;
  owners: OwnerStats[];
  default: { packets: number; bytes: number; errors: number };
}

export interface OwnerInfo {
  id: number;
  name: string;
}

interface Owner {
  id: number;
  /** Its descriptions in the trie (dpf), to remove them with the owner; empty for bpf. */
  paths: CanonicalAtom[][];
  name: string;
  netio: Netio;
  packets: number;
  bytes: number;
  errors: number;
  active: boolean;
}

/** The events a PacketDispatcher emits, with their listeners' arguments. */
export interface DispatcherEvents {
  /** An owner's netio threw: `err.code` is 'EOWNER', `err.cause` what it threw. */
  error: [err: NetpdError, owner: OwnerInfo];
}

const INDEX_MASK = 0xfffff;

export class PacketDispatcher extends EventEmitter<DispatcherEvents> {
  readonly arena: Arena;
  readonly filterType: FilterType;
  /** The LINKTYPE_ value expressions are compiled for. */
  readonly linkType: number;
  /** The incoming netio: push packets or batches here to dispatch them. */
  readonly incoming: Netio & { push(packet: Packet): void; pushBatch(batch: PacketBatch): void };
  private readonly d: number;
  private readonly maxOwners: number;
  private readonly burstSize: number;
  private readonly owners: (Owner | null)[];
  private readonly defaultOwner: Owner | null;
  private readonly batch: PacketBatch;
  private readonly cursor: Packet;
  private readonly order: Uint32Array;
  private readonly runs: Uint32Array;
  private readonly runWords: number;
  private readonly one: Uint32Array;
  private readonly staging: number;
  private readonly masks: number;
  private readonly resultsAddr: number;
  private readonly trie: DpfTrie | null;
  /** Programs in filter-id order (registration order), for the compiled module. */
  private readonly programs: BpfProgram[] = [];
  private readonly programOwners: number[] = [];
  private readonly jit: LazyModule<{ classify(slots: number, n: number, results: number): void }> | null;
  private jitShape = -1;
  private inCount = 0;
  private delivered = 0;
  private readonly drops: Record<DropReason, number> = { nomatch: 0, 'owner-error': 0, unregistered: 0, noslot: 0, kernel: 0 };
  private busy = false;
  private closed = false;
  /** Control-region regions this dispatcher reserved, given back by close(). */
  private readonly regions: { at: number; bytes: number }[] = [];

  private constructor(arena: Arena, options: DispatcherOptions) {
    super();
    this.arena = arena;
    this.filterType = options.filterType ?? 'bpf';
    this.linkType = linkTypeValue(options.linkType ?? 1);
    if (this.filterType !== 'bpf' && this.filterType !== 'dpf') {
      throw new NetpdError('EINVAL', `unknown filter type "${String(this.filterType)}"; use "bpf" or "dpf"`);
    }
    this.maxOwners = positive(options.maxOwners ?? 4096, 'maxOwners', 1 << 20);
    const programCapacity = positive(options.programCapacity ?? 131072, 'programCapacity', 1 << 26);
    this.burstSize = positive(options.burstSize ?? 256, 'burstSize', 1 << 16);
    const core = arena.core;
    const L = arena.layout;
    this.d = this.reserve(core.dispatch_bytes(this.maxOwners, programCapacity, this.burstSize), 64);
    if (!core.dispatch_init(this.d, arena.base, this.maxOwners, programCapacity, this.burstSize)) {
      throw new NetpdError('EINVAL', 'the core refused the dispatcher layout');
    }
    const v = arena.view;
    this.order = new Uint32Array(arena.memory.buffer, v.getUint32(this.d + L.dispOrder, true), this.burstSize);
    this.runWords = L.runSize >>> 2;
    this.runs = new Uint32Array(arena.memory.buffer, v.getUint32(this.d + L.dispRuns, true), this.burstSize * this.runWords);
    this.staging = v.getUint32(this.d + L.dispStaging, true);
    this.masks = v.getUint32(this.d + L.dispMasks, true);
    this.resultsAddr = v.getUint32(this.d + L.dispResults, true);
    const dpf = options.dpf ?? {};
    // A 5-tuple takes 8 nodes, most of them shared with other owners' paths.
    const maxNodes = dpf.maxNodes ?? this.maxOwners * 8 + 64;
    const trieOptions = { maxNodes, maxEdges: dpf.maxEdges ?? maxNodes, maxFields: dpf.maxFields ?? 4096 };
    this.trie = this.filterType === 'dpf' ? DpfTrie.create(arena, trieOptions) : null;
    if (this.trie) this.regions.push({ at: this.trie.address, bytes: DpfTrie.bytes(trieOptions) });
    this.jit = options.jit === false ? null : new LazyModule({
      build: () => this.moduleBytes(),
      imports: { env: { memory: arena.memory } },
      // The interpreter keeps classifying: a compile failure is a bug to report, not an
      // error of dispatch, so it is a warning whether or not anyone listens for 'error'.
      onError: (err) => process.emitWarning(`netpd: compiling the classifier failed; interpreting instead: ${String(err)}`, { code: 'NETPD_JIT' }),
    });
    this.owners = new Array<Owner | null>(this.maxOwners).fill(null);
    this.defaultOwner = options.defaultNetio
      ? { id: -1, paths: [], name: 'default', netio: toNetio(options.defaultNetio, 'defaultNetio'), packets: 0, bytes: 0, errors: 0, active: true }
      : null;
    this.batch = new PacketBatch(arena, this.order);
    this.cursor = new Packet(arena);
    this.one = new Uint32Array(arena.memory.buffer, this.reserve(4, 4), 1);
    this.incoming = {
      push: (packet: Packet) => {
        this.live();
        if (packet.arena !== this.arena) throw new NetpdError('EINVAL', 'the packet lives in another arena');
        this.one[0] = packet.slot;
        this.dispatchAt(this.one.byteOffset, 1);
      },
      pushBatch: (batch: PacketBatch) => {
        this.live();
        if (batch.arena !== this.arena) throw new NetpdError('EINVAL', 'the batch lives in another arena');
        this.dispatchAt(this.arena.addressOf(batch.slots, batch.start + batch.length) + batch.start * 4, batch.length);
      },
    };
  }

  /** Creates a dispatcher (OSKit's oskit_packet_dispatcher_create); its incoming netio is `.incoming`. */
  static create(options: DispatcherOptions = {}): PacketDispatcher {
    return new PacketDispatcher(options.arena ?? Arena.create(), options);
  }

  /**
   * Registers an owner for packets matching `description` (see Description). Returns
   * the owner id. Throws EFILTER for an expression that does not compile (for 'dpf':
   * also one DPF cannot express, saying why), EBADPROG for an invalid program, EBADDESC
   * for a malformed DPF description, EDUPDESC for a DPF description equal to a
   * registered one, EFULL when the owner table, program memory or trie is full.
   */
  register(description: Description, netio: NetioLike, options: RegisterOptions = {}): number {
    this.live();
    const target = toNetio(netio, 'netio');
    const core = this.arena.core;
    const program = this.trie ? null : this.toBpf(description);
    const paths = this.trie ? toDpf(description, this.linkType) : [];
    const len = program ? loadProgram(this.arena, this.staging, this.masks, program) : 0;
    const pid = core.dispatch_add(this.d, len) >>> 0;
    if (pid === PID_NONE) {
      throw new NetpdError('EFULL', `cannot register another owner: ${this.ownerCount} owners of ${this.maxOwners} registered, or program memory is full`);
    }
    const index = pid & INDEX_MASK;
    if (this.trie) {
      const done: CanonicalAtom[][] = [];
      try {
        for (const path of paths) {
          this.trie.insert(path, index);
          done.push(path);
        }
      } catch (err) {
        for (const path of done) this.trie.remove(path);
        core.dispatch_remove(this.d, pid);
        throw err;
      }
    } else {
      this.programs.push(program!);
      this.programOwners.push(pid);
    }
    this.owners[index] = { id: pid, paths, name: options.name ?? `owner-${pid}`, netio: target, packets: 0, bytes: 0, errors: 0, active: true };
    this.rulesChanged();
    return pid;
  }

  /** Removes an owner. Throws EBADID for an id that is unknown or already unregistered. */
  unregister(id: number): void {
    this.live();
    if (!Number.isInteger(id) || id < 0 || !this.arena.core.dispatch_remove(this.d, id)) {
      throw new NetpdError('EBADID', `no registered owner has id ${id}`);
    }
    const owner = this.owners[id & INDEX_MASK];
    if (owner) {
      owner.active = false;
      for (const path of owner.paths) this.trie?.remove(path);
    }
    const at = this.programOwners.indexOf(id);
    if (at >= 0) {
      this.programOwners.splice(at, 1);
      this.programs.splice(at, 1);
    }
    this.owners[id & INDEX_MASK] = null;
    this.rulesChanged();
  }

  /**
   * Resolves once the compiled classifier matches the owners registered now (at once
   * when `jit` is off). Dispatch never waits for it: until then the interpreter runs.
   */
  jitReady(): Promise<void> {
    if (this.closed) return Promise.reject(this.closedError());
    return this.jit?.ready() ?? Promise.resolve();
  }

  /** True when bursts are being classified by compiled code right now. */
  get jitActive(): boolean {
    return this.jit?.current != null;
  }

  private rulesChanged(): void {
    if (!this.jit) return;
    if (this.trie) {
      // Data-only changes (an owner under an existing hash node) keep the module, or
      // the one being compiled: generated code reads nodes, edges and terminals at run time.
      const shape = this.trie.structureVersion;
      if (shape === this.jitShape) return;
      this.jitShape = shape;
    }
    this.jit.invalidate();
  }

  private moduleBytes(): Uint8Array<ArrayBuffer> | null {
    if (this.closed) return null;
    if (this.trie) return this.trie.stats.owners === 0 ? null : dpfModuleBytes(this.trie, burstLayout(this.arena), arenaMemoryLimits(this.arena));
    if (this.programs.length === 0) return null;
    return bpfModuleBytes(this.programs, burstLayout(this.arena), arenaMemoryLimits(this.arena));
  }

  /** Number of owners registered. */
  get ownerCount(): number {
    if (this.closed) return 0;
    return this.arena.view.getUint32(this.d + this.arena.layout.dispCount, true);
  }

  /**
   * Classifies and delivers vec[0..n) (slots in this dispatcher's arena). The caller
   * keeps its references and frees the slots afterwards.
   */
  dispatchBurst(vec: Uint32Array, n: number): void {
    this.live();
    this.dispatchAt(this.arena.addressOf(vec, n), n);
  }

  private dispatchAt(addr: number, n: number): void {
    if (this.busy) throw new NetpdError('EINVAL', 'dispatch re-entered from a netio callback of the same dispatcher; dispatch after the callback returns');
    this.busy = true;
    try {
      this.inCount += n;
      for (let done = 0; done < n; done += this.burstSize) {
        const k = Math.min(this.burstSize, n - done);
        this.deliverRuns(this.classify(addr + done * 4, k));
      }
    } finally {
      this.busy = false;
    }
  }

  /** Classifies k slots at addr into runs by owner (one or two calls into WebAssembly). */
  private classify(addr: number, k: number): number {
    const core = this.arena.core;
    const compiled = this.jit?.current;
    if (compiled) {
      compiled.classify(addr, k, this.resultsAddr);
      return core.dispatch_group(this.d, addr, k, this.trie ? 0 : 1);
    }
    if (this.trie) {
      core.dpf_classify_burst(this.trie.address, this.arena.base, addr, k, this.resultsAddr);
      return core.dispatch_group(this.d, addr, k, 0);
    }
    return core.dispatch_classify(this.d, addr, k);
  }

  private deliverRuns(runCount: number): void {
    const L = this.arena.layout;
    const runs = this.runs;
    const w = this.runWords;
    for (let r = 0; r < runCount; r++) {
      const base = r * w;
      const index = runs[base + (L.runOwner >>> 2)];
      const start = runs[base + (L.runStart >>> 2)];
      const count = runs[base + (L.runCount >>> 2)];
      const bytes = runs[base + (L.runBytes >>> 2)];
      if (index >= this.maxOwners) {
        if (this.defaultOwner) this.deliver(this.defaultOwner, start, count, bytes);
        else this.drops.nomatch += count;
      } else {
        const owner = this.owners[index];
        if (owner) this.deliver(owner, start, count, bytes);
        else this.drops.unregistered += count;
      }
    }
  }

  private deliver(owner: Owner, start: number, count: number, bytes: number): void {
    const netio = owner.netio;
    if (netio.pushBatch) {
      const batch = this.batch;
      batch.start = start;
      batch.length = count;
      try {
        netio.pushBatch(batch);
      } catch (err) {
        this.ownerFailed(owner, count, err);
        return;
      }
      owner.packets += count;
      owner.bytes += bytes;
      this.delivered += count;
      return;
    }
    // The run's count and bytes are settled once; only a packet that is not delivered
    // (its netio threw, or the owner was unregistered mid-run) is taken back out.
    const push = netio.push!;
    const cursor = this.cursor;
    const order = this.order;
    let lost = 0;
    let lostBytes = 0;
    for (let i = 0; i < count; i++) {
      const slot = order[start + i];
      if (!owner.active) {
        this.drops.unregistered += count - i;
        lost += count - i;
        for (let j = i; j < count; j++) lostBytes += this.arena.wireLen(order[start + j]);
        break;
      }
      cursor.slot = slot;
      try {
        push.call(netio, cursor);
      } catch (err) {
        this.ownerFailed(owner, 1, err);
        lost++;
        lostBytes += this.arena.wireLen(slot);
      }
    }
    owner.packets += count - lost;
    owner.bytes += bytes - lostBytes;
    this.delivered += count - lost;
  }

  private ownerFailed(owner: Owner, count: number, thrown: unknown): void {
    const first = owner.errors === 0;
    owner.errors += count;
    this.drops['owner-error'] += count;
    // Without a listener only an owner's first failure warns: the rest are in its counters.
    if (!first && this.listenerCount('error') === 0) return;
    const why = thrown instanceof Error ? thrown.message : String(thrown);
    const err = new NetpdError('EOWNER', `owner "${owner.name}" (id ${owner.id}) threw: ${why}; its packets are counted as owner-error drops`, { cause: thrown });
    emitError(this, err, { id: owner.id, name: owner.name });
  }

  private toBpf(description: Description): BpfProgram {
    if (typeof description === 'string') {
      // -ddd text, or else a pcap-filter expression compiled for the dispatcher's link type.
      return isDddText(description) ? toProgram(description) : compileFilter(description, { linkType: this.linkType });
    }
    if (!Array.isArray(description) || !description.every(isInstruction)) {
      throw new NetpdError('EBADDESC', 'a bpf description is an expression, tcpdump -ddd text, or an array of {code, jt, jf, k}');
    }
    return description as BpfProgram;
  }

  /**
   * For sources: counts packets that came in but never reached the dispatcher —
   * `noslot` (the arena had no free slot) or `kernel` (the kernel dropped them for
   * lack of buffer space) — so `in = delivered + dropped` covers them too.
   */
  countDrops(reason: 'noslot' | 'kernel', n: number): void {
    if (this.closed) return;
    this.inCount += n;
    this.drops[reason] += n;
  }

  /** Counters: packets in, delivered, dropped by reason, per owner and default. */
  stats(): DispatcherStats {
    const owners: OwnerStats[] = [];
    for (const o of this.owners) if (o) owners.push({ id: o.id, name: o.name, packets: o.packets, bytes: o.bytes, errors: o.errors });
    const d = this.defaultOwner;
    return {
      jit: { enabled: this.jit !== null, active: this.jitActive, compiles: this.jit?.compiles ?? 0 },
      in: this.inCount,
      delivered: this.delivered,
      dropped: { ...this.drops },
      owners,
      default: { packets: d?.packets ?? 0, bytes: d?.bytes ?? 0, errors: d?.errors ?? 0 },
    };
  }

  /**
   * Unregisters every owner, drops the compiled classifier and gives the dispatcher's
   * tables back to the arena (a dispatcher created later on it reuses the space).
   * Counters stay readable with stats(); any other call throws ECLOSED. Idempotent.
   * Throws EINVAL when called from a netio callback during dispatch.
   */
  close(): void {
    if (this.closed) return;
    if (this.busy) throw new NetpdError('EINVAL', 'close() called from a netio callback during dispatch; close the dispatcher after dispatch returns');
    for (const owner of this.owners) if (owner) this.unregister(owner.id);
    this.closed = true;
    this.jit?.invalidate();
    for (const r of this.regions) this.arena.unreserve(r.at, r.bytes);
    this.regions.length = 0;
  }

  /** close(), for `using pd = PacketDispatcher.create(...)`. */
  [Symbol.dispose](): void {
    this.close();
  }

  private reserve(bytes: number, align: number): number {
    const at = this.arena.reserve(bytes, align);
    this.regions.push({ at, bytes });
    return at;
  }

  private live(): void {
    if (this.closed) throw this.closedError();
  }

  private closedError(): NetpdError {
    return new NetpdError('ECLOSED', `this ${this.filterType} dispatcher was closed; create another`);
  }
}

function isInstruction(x: unknown): boolean {
  return typeof x === 'object' && x !== null && 'code' in x && 'k' in x;
}

/** A 'dpf' description as canonical paths, one per alternative. */
function toDpf(description: Description, linkType: number): CanonicalAtom[][] {
  // Optimized, as the 'bpf' filter type compiles expressions: the descriptions then
  // accept exactly what that program accepts, packets cut short included.
  if (typeof description === 'string') return compileDpf(description, { optimize: true, linkType });
  if (!Array.isArray(description) || description.length === 0) {
    throw new NetpdError('EBADDESC', 'a dpf description is an expression, an array of atoms, or an array of such arrays');
  }
  if (description.every(Array.isArray)) {
    const paths = new Map<string, CanonicalAtom[]>();
    for (const d of description as readonly DpfDescription[]) {
      const path = canonicalDescription(d);
      paths.set(descriptionKey(path), path);
    }
    return [...paths.values()];
  }
  if (description.some(isInstruction)) throw new NetpdError('EBADDESC', 'a classic BPF program was given to a "dpf" dispatcher; create it with filterType "bpf"');
  return [canonicalDescription(description)];
}

function positive(v: number, name: string, max: number): number {
  if (!Number.isInteger(v) || v < 1 || v > max) throw new NetpdError('EINVAL', `${name} must be an integer in 1..${max}, got ${v}`);
  return v;
}
