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
// there is no default netio), `owner-error` (the netio threw; the error is emitted as
// an 'error' event with the owner, and dispatch goes on), `unregistered` (its owner
// was unregistered by a callback while the burst was being delivered). So
// `in = delivered + dropped` holds whenever no dispatch is running.
//
// Ownership: push and pushBatch borrow packets. The dispatcher takes no reference;
// whoever put the slots in (a source, or the caller) still holds them and frees them
// after dispatch returns. An owner keeps a packet by retaining it.
//
// Overlapping descriptions: the first registered description that accepts a packet
// wins. Registering and unregistering inside a netio callback is safe: changes apply
// from the next burst; packets of the current burst classified to an owner that is
// gone by the time they would be delivered are dropped as `unregistered`.

import { EventEmitter } from 'node:events';
import { NetpdError } from './errors.js';
import { Arena } from './arena.js';
import { PID_NONE } from './core.js';
import { loadProgram, toProgram, isDddText, type BpfProgram } from './bpf.js';
import { Packet, PacketBatch } from './packet.js';
import { toNetio, type Netio, type NetioLike } from './netio.js';
import { compileFilter } from './filter/compile.js';

export type FilterType = 'bpf';
export type Description = BpfProgram | string;
export type DropReason = 'nomatch' | 'owner-error' | 'unregistered' | 'noslot' | 'kernel';

export interface DispatcherOptions {
  /** The description format: 'bpf' (classic BPF programs). */
  filterType?: FilterType;
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
  name: string;
  netio: Netio;
  packets: number;
  bytes: number;
  errors: number;
  active: boolean;
}

const INDEX_MASK = 0xfffff;

export class PacketDispatcher extends EventEmitter<{ error: [unknown, OwnerInfo] }> {
  readonly arena: Arena;
  readonly filterType: FilterType;
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
  private inCount = 0;
  private delivered = 0;
  private readonly drops: Record<DropReason, number> = { nomatch: 0, 'owner-error': 0, unregistered: 0, noslot: 0, kernel: 0 };
  private busy = false;

  private constructor(arena: Arena, options: DispatcherOptions) {
    super();
    this.arena = arena;
    this.filterType = options.filterType ?? 'bpf';
    if (this.filterType !== 'bpf') throw new NetpdError('EINVAL', `unknown filter type "${String(this.filterType)}"; this version supports "bpf"`);
    this.maxOwners = positive(options.maxOwners ?? 4096, 'maxOwners', 1 << 20);
    const programCapacity = positive(options.programCapacity ?? 131072, 'programCapacity', 1 << 26);
    this.burstSize = positive(options.burstSize ?? 256, 'burstSize', 1 << 16);
    const core = arena.core;
    const L = arena.layout;
    this.d = arena.reserve(core.dispatch_bytes(this.maxOwners, programCapacity, this.burstSize), 64);
    if (!core.dispatch_init(this.d, arena.base, this.maxOwners, programCapacity, this.burstSize)) {
      throw new NetpdError('EINVAL', 'the core refused the dispatcher layout');
    }
    const v = arena.view;
    this.order = new Uint32Array(arena.memory.buffer, v.getUint32(this.d + L.dispOrder, true), this.burstSize);
    this.runWords = L.runSize >>> 2;
    this.runs = new Uint32Array(arena.memory.buffer, v.getUint32(this.d + L.dispRuns, true), this.burstSize * this.runWords);
    this.staging = v.getUint32(this.d + L.dispStaging, true);
    this.masks = v.getUint32(this.d + L.dispMasks, true);
    this.owners = new Array<Owner | null>(this.maxOwners).fill(null);
    this.defaultOwner = options.defaultNetio
      ? { id: -1, name: 'default', netio: toNetio(options.defaultNetio, 'defaultNetio'), packets: 0, bytes: 0, errors: 0, active: true }
      : null;
    this.batch = new PacketBatch(arena, this.order);
    this.cursor = new Packet(arena);
    this.one = arena.burstVector(1);
    this.incoming = {
      push: (packet: Packet) => {
        if (packet.arena !== this.arena) throw new NetpdError('EINVAL', 'the packet lives in another arena');
        this.one[0] = packet.slot;
        this.dispatchAt(this.one.byteOffset, 1);
      },
      pushBatch: (batch: PacketBatch) => {
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
   * Registers an owner for packets matching `description`: a pcap-filter expression
   * (compiled by compileFilter), or a classic BPF program as instructions or tcpdump
   * -ddd text. Returns the owner id. Throws EFILTER for a bad expression, EBADPROG for
   * an invalid program, EFULL when the owner table or program memory is full.
   */
  register(description: Description, netio: NetioLike, options: RegisterOptions = {}): number {
    const target = toNetio(netio, 'netio');
    const program = this.toBpf(description);
    const len = loadProgram(this.arena, this.staging, this.masks, program);
    const pid = this.arena.core.dispatch_bpf_add(this.d, len) >>> 0;
    if (pid === PID_NONE) {
      throw new NetpdError('EFULL', `cannot register another owner: ${this.ownerCount} owners of ${this.maxOwners} registered, or program memory is full`);
    }
    this.owners[pid & INDEX_MASK] = { id: pid, name: options.name ?? `owner-${pid}`, netio: target, packets: 0, bytes: 0, errors: 0, active: true };
    return pid;
  }

  /** Removes an owner. Throws EBADID for an id that is unknown or already unregistered. */
  unregister(id: number): void {
    if (!Number.isInteger(id) || id < 0 || !this.arena.core.dispatch_remove(this.d, id)) {
      throw new NetpdError('EBADID', `no registered owner has id ${id}`);
    }
    const owner = this.owners[id & INDEX_MASK];
    if (owner) owner.active = false;
    this.owners[id & INDEX_MASK] = null;
  }

  /** Number of owners registered. */
  get ownerCount(): number {
    return this.arena.view.getUint32(this.d + this.arena.layout.dispCount, true);
  }

  /**
   * Classifies and delivers vec[0..n) (slots in this dispatcher's arena). The caller
   * keeps its references and frees the slots afterwards.
   */
  dispatchBurst(vec: Uint32Array, n: number): void {
    this.dispatchAt(this.arena.addressOf(vec, n), n);
  }

  private dispatchAt(addr: number, n: number): void {
    if (this.busy) throw new NetpdError('EINVAL', 'dispatch re-entered from a netio callback of the same dispatcher; dispatch after the callback returns');
    this.busy = true;
    try {
      this.inCount += n;
      for (let done = 0; done < n; done += this.burstSize) {
        const k = Math.min(this.burstSize, n - done);
        const runCount = this.arena.core.dispatch_classify(this.d, addr + done * 4, k);
        this.deliverRuns(runCount);
      }
    } finally {
      this.busy = false;
    }
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
    const push = netio.push!;
    const cursor = this.cursor;
    for (let i = 0; i < count; i++) {
      if (!owner.active) {
        this.drops.unregistered += count - i;
        return;
      }
      cursor.slot = this.order[start + i];
      try {
        push.call(netio, cursor);
      } catch (err) {
        this.ownerFailed(owner, 1, err);
        continue;
      }
      owner.packets++;
      owner.bytes += this.arena.wireLen(cursor.slot);
      this.delivered++;
    }
  }

  private ownerFailed(owner: Owner, count: number, err: unknown): void {
    owner.errors += count;
    this.drops['owner-error'] += count;
    if (this.listenerCount('error') > 0) this.emit('error', err, { id: owner.id, name: owner.name });
  }

  private toBpf(description: Description): BpfProgram {
    if (typeof description === 'string') {
      // -ddd text, or else a pcap-filter expression compiled for Ethernet.
      return isDddText(description) ? toProgram(description) : compileFilter(description);
    }
    if (!Array.isArray(description)) throw new NetpdError('EBADDESC', 'a bpf description is an array of {code, jt, jf, k} or tcpdump -ddd text');
    return description;
  }

  /**
   * For sources: counts packets that came in but never reached the dispatcher —
   * `noslot` (the arena had no free slot) or `kernel` (the kernel dropped them for
   * lack of buffer space) — so `in = delivered + dropped` covers them too.
   */
  countDrops(reason: 'noslot' | 'kernel', n: number): void {
    this.inCount += n;
    this.drops[reason] += n;
  }

  /** Counters: packets in, delivered, dropped by reason, per owner and default. */
  stats(): DispatcherStats {
    const owners: OwnerStats[] = [];
    for (const o of this.owners) if (o) owners.push({ id: o.id, name: o.name, packets: o.packets, bytes: o.bytes, errors: o.errors });
    const d = this.defaultOwner;
    return {
      in: this.inCount,
      delivered: this.delivered,
      dropped: { ...this.drops },
      owners,
      default: { packets: d?.packets ?? 0, bytes: d?.bytes ?? 0, errors: d?.errors ?? 0 },
    };
  }
}

function positive(v: number, name: string, max: number): number {
  if (!Number.isInteger(v) || v < 1 || v > max) throw new NetpdError('EINVAL', `${name} must be an integer in 1..${max}, got ${v}`);
  return v;
}
