// AfPacketSource: a live Linux interface as a packet source (and sink) for the arena.
//
// Why. The dispatcher and everything above it work on arena slots and do not care
// where the bytes came from; this swaps a capture file for a NIC. The native addon
// (addon/) only moves frames between an AF_PACKET socket and slots chosen here.
//
// Receive. A libuv poll handle on the socket wakes us when frames are waiting; the
// event loop never blocks. Each wake-up drains up to `budget` frames, `burstSize` at a
// time: one call into the addon fills a burst of slots, one call into the dispatcher
// (or the onBurst callback) hands the whole burst on, one call into the core frees
// the source's references. Slots come from a stash that the source refills from the
// arena only when it runs short: slots allocated but not yet filled wait for the next
// burst, and slots no owner kept return to the stash after delivery instead of to the
// arena's free list, so the source keeps writing the same few hundred slots, which
// stay in cache (a FIFO free list would walk it through the whole arena).
//
// Accounting. Every frame the kernel accepted is counted once: received into a slot,
// dropped by the kernel for lack of ring space (PACKET_STATISTICS tp_drops, reason
// `kernel`), or read and thrown away because the arena had no free slot (`noslot`).
// With a dispatcher both drop reasons are added to its counters, so its
// `in = delivered + dropped` covers frames that never reached it.
//
// Transmit. send(vec, n) hands slots to the kernel and releases the references of
// the frames it took; `transmit` is a netio (a dispatcher owner, say) that retains
// what it is pushed, queues it and sends in bursts, releasing each slot when sent.
//
// Pulling. A source opened with neither a dispatcher nor onBurst is read by its
// consumer: `for await (const batch of source)`. Then nothing watches the socket until
// the loop asks for a burst (frames wait in the kernel's ring, as in a paused stream);
// the batch is the receive vector itself, and the next iteration returns its slots to
// the stash, exactly as a delivered burst's are.
//
// "any". libpcap's all-interfaces capture: a cooked socket (addon/afpacket.h) whose
// slots hold a LINUX_SLL header and the network-layer packet (linkType 113). A kernel
// filter for it is compiled for LINUX_SLL and then rewritten as libpcap's fix_program
// does, since the kernel runs it on the network-layer packet: loads at 16 and beyond
// move down by 16, the packet type (offset 0) and protocol (offset 14) become the
// kernel's SKF_AD_PKTTYPE and SKF_AD_PROTOCOL loads.
//
// Changing the filter. setFilter() attaches the new program with one SO_ATTACH_FILTER,
// which the kernel swaps atomically: every frame is judged by the old filter or the new.
// libpcap first attaches a reject-all filter and drains the socket (and re-filters the
// ring's blocks in user space), which loses frames that arrive meanwhile or that the
// old filter accepted; netpd loses none: frames the old filter accepted before the swap
// are still delivered after it.
//
// Errors. Opening fails with EPERM (no CAP_NET_RAW, with how to grant it), ENODEV
// (no such interface), ENETDOWN (interface down) or ENOTSUP (no addon, or not
// Linux). An interface that goes down or disappears while open closes the source
// and emits 'error' (ENETDOWN) and then 'close', as Node's streams do; with no 'error'
// listener it is a process warning (events.ts), and a `for await` loop over the source
// throws it instead. Nothing throws into the event loop.

import { EventEmitter } from 'node:events';
import { readdirSync, readFileSync } from 'node:fs';
import { NetpdError } from '../errors.js';
import { AbortError, checkAborted, emitError } from '../events.js';
import type { Arena } from '../arena.js';
import type { PacketDispatcher } from '../dispatcher.js';
import { validateProgram, type BpfProgram } from '../bpf.js';
import { compileFilter, linkTypeName } from '../filter/compile.js';
import type { Netio } from '../netio.js';
import { PacketBatch, type Packet } from '../packet.js';
import { loadAddon, type NativeError, type NativeSocket } from './addon.js';

export type FanoutMode = 'hash' | 'cpu' | 'lb';

export interface FanoutOptions {
  /** Fanout group id (0..65535); sockets on one interface with the same id share its frames. */
  group: number;
  /** How frames are split: by flow hash (default), by receiving CPU, or round robin. */
  mode?: FanoutMode;
  /** Reassemble IP fragments before hashing, so all fragments of a datagram go to one member. */
  defrag?: boolean;
  /** Send to another member when the chosen one's ring is full, instead of dropping. */
  rollover?: boolean;
}

export interface AfPacketOptions {
  /** Where frames land. Give this or `dispatcher`. */
  arena?: Arena;
  /** Received bursts go to this dispatcher (and frames land in its arena). */
  dispatcher?: PacketDispatcher;
  /**
   * Called with each received burst (slots vec[0..n)) when there is no dispatcher.
   * The source frees its references after the call; retain what you keep.
   */
  onBurst?: (vec: Uint32Array, n: number) => void;
  /** Receive frames not addressed to this host. Default true (as tcpdump). */
  promiscuous?: boolean;
  /** Bytes kept of each frame (default 262144; frames are also cut to the slot size). */
  snaplen?: number;
  /** A pcap-filter expression or a classic BPF program run by the kernel. */
  filter?: string | BpfProgram;
  /** Join a PACKET_FANOUT group. */
  fanout?: FanoutOptions;
  /** 'inout' (default, as tcpdump), 'in' (skip frames this host sends) or 'out' (only those), as tcpdump -Q. */
  direction?: 'inout' | 'in' | 'out';
  /** Frames per burst (default 256). */
  burstSize?: number;
  /** Most frames drained per wake-up before the event loop gets a turn (default 4096). */
  budget?: number;
  /** 'ring' (TPACKET_V3, default) or 'mmsg' (recvmmsg straight into slots). */
  rxMode?: 'ring' | 'mmsg';
  /** 'mmsg' (sendmmsg from the slots, default) or 'ring' (PACKET_TX_RING). */
  txMode?: 'mmsg' | 'ring';
  /**
   * Bytes of the receive ring (ring mode, default 32 MiB, in blocks of 128 KiB or one
   * slot, whichever is larger) or socket buffer (mmsg mode). A quiet link fills a block
   * per blockTimeoutMs, so the default rides out a stall of the event loop of half a
   * second at any rate up to what 32 MiB of frames holds.
   */
  bufferBytes?: number;
  /** Longest a partly filled ring block waits before it is handed over, in ms (default 2). */
  blockTimeoutMs?: number;
  /** Open for transmit only: no receive socket, no polling. Default false. */
  transmitOnly?: boolean;
  /** Bypass the qdisc layer on transmit (PACKET_QDISC_BYPASS). Default false. */
  qdiscBypass?: boolean;
  /**
   * How often the kernel's counters (PACKET_STATISTICS) are merged into the source's
   * and the dispatcher's, in ms (default 1000; 0 reads them only in stats() and close()).
   */
  statsIntervalMs?: number;
  /** Frames the transmit netio may hold while the kernel is busy (default 4096). */
  transmitQueue?: number;
  /** Closes the source when aborted (and ends a `for await` loop over it with AbortError). */
  signal?: AbortSignal;
}

/** One network interface, as `tcpdump -D` lists it. */
export interface NetInterface {
  /** The kernel's interface index (0 for the "any" pseudo-device). */
  index: number;
  name: string;
  /** IFF_UP: configured up. */
  up: boolean;
  /** IFF_RUNNING: up and with carrier. */
  running: boolean;
  loopback: boolean;
  /** The LINKTYPE_* a capture on it has (1 EN10MB, 113 LINUX_SLL for "any", ...). */
  linkType: number;
  /** libpcap's name for linkType. */
  linkTypeName: string;
}

/** The events an AfPacketSource emits, with their listeners' arguments. */
export interface AfPacketEvents {
  /**
   * The source failed (ENETDOWN: its interface went down or away; EIO) and is closed,
   * or an onBurst callback threw (EOWNER; the source goes on). Followed by 'close'
   * when the source closed.
   */
  error: [err: NetpdError];
  /** The source closed: close(), an abort, or a failure (after its 'error'). */
  close: [];
}

export interface AfPacketStats {
  /** Frames brought into the arena. */
  received: number;
  /** Their bytes on the wire. */
  bytes: number;
  /** PACKET_STATISTICS: frames the socket's filter accepted (including those then dropped), and drops for lack of ring space. */
  kernel: { packets: number; drops: number };
  /** Frames accepted but never delivered: `kernel` (ring or buffer full), `noslot` (arena empty). */
  dropped: { kernel: number; noslot: number };
  /**
   * Frames the kernel handed over that libpcap would not deliver either, so netpd leaves
   * them out: the wrong direction for `direction`, or the loopback device's outgoing copy
   * of a packet it also hands in.
   */
  skipped: number;
  /** Frames handed to the kernel for transmission. */
  sent: number;
  /** Their bytes (as sent: the captured bytes of each slot). */
  sentBytes: number;
  /** Frames the link refused (too long for the MTU, say). */
  sendErrors: number;
  /** Frames the transmit netio dropped because its queue was full. */
  transmitDrops: number;
}

const FANOUT_MODES: Record<FanoutMode, 'hash' | 'cpu' | 'lb'> = { hash: 'hash', cpu: 'cpu', lb: 'lb' };
const RING_BLOCK_BYTES = 128 << 10;
/** Room for the block descriptor and a tpacket3_hdr + sockaddr_ll ahead of a frame. */
const RING_FRAME_HEADER_BYTES = 256;
const EPOLL_ERRORS = ['ENETDOWN', 'ENODEV', 'ENXIO'];
const LINKTYPE_EN10MB = 1;
const LINKTYPE_LINUX_SLL = 113;
const DIRECTIONS = ['inout', 'in', 'out'];

export class AfPacketSource extends EventEmitter<AfPacketEvents> {
  /** The interface name ("any" for all of them). */
  readonly name: string;
  /** The kernel's interface index (what received packets carry as ifIndex); 0 for "any". */
  readonly ifIndex: number;
  /** LINKTYPE_* of what lands in the slots: 1 (EN10MB) for an interface, 113 (LINUX_SLL) for "any". */
  readonly linkType: number;
  readonly arena: Arena;
  readonly dispatcher: PacketDispatcher | undefined;

  private native: NativeSocket | null;
  private readonly onBurst: ((vec: Uint32Array, n: number) => void) | undefined;
  private readonly burst: number;
  private readonly budget: number;
  private readonly rxVec: Uint32Array;
  private readonly rxAddr: number;
  private stashed = 0;
  private readonly txVec: Uint32Array;
  private txQueued = 0;
  private txScheduled = false;
  private readonly transmitNetio: Netio;
  private readonly counters = { noslot: 0, sent: 0, sentBytes: 0, sendErrors: 0, transmitDrops: 0 };
  private received = { packets: 0, bytes: 0, skipped: 0 };
  private kernel = { packets: 0, drops: 0 };
  private readonly signal: AbortSignal | undefined;
  private readonly onAbort: () => void;
  private readonly receiving: boolean;
  private readonly statsTimer: NodeJS.Timeout | undefined;
  private readonly snaplen: number;
  /** Pull mode (no dispatcher, no onBurst): a `for await` loop reads the socket. */
  private readonly pulled: boolean;
  private iterating = false;
  /** Resolves the wait of a `for await` loop for frames (or for close/abort). */
  private wake: (() => void) | null = null;
  /** The failure that closed the source, for a `for await` loop to throw. */
  private failure: NetpdError | null = null;
  /** Slots at the front of the receive vector lent to a callback or a loop body right now. */
  private lent = 0;

  private constructor(name: string, native: NativeSocket, arena: Arena, options: AfPacketOptions, snaplen: number) {
    super();
    this.name = name;
    this.native = native;
    this.ifIndex = native.ifindex;
    this.linkType = name === 'any' ? LINKTYPE_LINUX_SLL : LINKTYPE_EN10MB;
    this.snaplen = snaplen;
    this.pulled = !options.dispatcher && !options.onBurst;
    this.arena = arena;
    this.dispatcher = options.dispatcher;
    this.onBurst = options.onBurst;
    this.burst = options.burstSize ?? 256;
    this.budget = options.budget ?? 4096;
    this.rxVec = arena.burstVector(this.burst);
    this.rxAddr = this.rxVec.byteOffset;
    this.txVec = arena.burstVector(options.transmitQueue ?? 4096);
    this.receiving = options.transmitOnly !== true;
    const L = arena.layout;
    native.attach(arena.bytes, {
      meta: arena.metaBase,
      data: arena.dataBase,
      slotSize: arena.slotSize,
      slotCount: arena.slotCount,
      metaSize: L.metaSize,
      capLen: L.metaCapLen,
      wireLen: L.metaWireLen,
      tsNs: L.metaTsNs,
      ifIndex: L.metaIfIndex,
      flowHash: L.metaFlowHash,
      flags: L.metaFlags,
      truncatedCounter: arena.base + L.arenaTruncated,
    });
    this.transmitNetio = {
      push: (packet: Packet) => this.queue(packet.slot),
      pushBatch: (batch: PacketBatch) => {
        for (let i = 0; i < batch.length; i++) this.queue(batch.slots[batch.start + i]);
      },
    };
    this.signal = options.signal;
    this.onAbort = () => this.close();
    this.signal?.addEventListener('abort', this.onAbort, { once: true });
    // Fault the arena in now: a slot's first use would otherwise cost a page fault
    // (and a zeroed page) in the middle of a burst.
    arena.prefault();
    if (this.receiving) {
      if (!this.pulled) native.poll((status) => this.onReadable(status));
      // The kernel's drop counter is read (and reset) only on request; reading it on a
      // timer keeps the dispatcher's kernel drops current between stats() calls.
      const every = options.statsIntervalMs ?? 1000;
      if (every > 0) this.statsTimer = setInterval(() => this.refreshStats(), every).unref();
    }
  }

  /**
   * Opens `iface`. Throws EPERM without CAP_NET_RAW, ENODEV for an unknown interface,
   * ENETDOWN when it is down, EFILTER/EBADPROG for a bad filter, ENOTSUP where live
   * capture is not available.
   */
  static open(iface: string, options: AfPacketOptions = {}): AfPacketSource {
    if (typeof iface !== 'string' || iface.length === 0) throw new NetpdError('EINVAL', 'AfPacketSource.open needs an interface name');
    options.signal?.throwIfAborted();
    const arena = options.dispatcher?.arena ?? options.arena;
    if (!arena) throw new NetpdError('EINVAL', 'AfPacketSource.open needs an arena or a dispatcher');
    if (options.dispatcher && options.arena && options.arena !== options.dispatcher.arena) {
      throw new NetpdError('EINVAL', "the arena given is not the dispatcher's arena");
    }
    if (options.dispatcher && options.onBurst) throw new NetpdError('EINVAL', 'give a dispatcher or onBurst, not both');
    const direction = options.direction ?? 'inout';
    if (!DIRECTIONS.includes(direction)) throw new NetpdError('EINVAL', `direction must be in, out or inout, got "${String(direction)}"`);
    if (iface === 'any' && options.transmitOnly) throw new NetpdError('EINVAL', 'the "any" device cannot transmit: open the interface to send on');
    const linkType = iface === 'any' ? LINKTYPE_LINUX_SLL : LINKTYPE_EN10MB;
    if (options.dispatcher && options.dispatcher.linkType !== linkType) {
      // Its expressions would test the wrong bytes and quietly match nothing.
      throw new NetpdError('EINVAL', `${iface} delivers ${linkTypeName(linkType)} frames but the dispatcher compiles for ${linkTypeName(options.dispatcher.linkType)}: create it with PacketDispatcher.create({ linkType: '${linkTypeName(linkType)}' })`);
    }
    const snaplen = integer(options.snaplen ?? 262144, 'snaplen', 1, 262144);
    const burst = integer(options.burstSize ?? 256, 'burstSize', 1, 65536);
    integer(options.budget ?? 4096, 'budget', 1, 1 << 24);
    integer(options.transmitQueue ?? 4096, 'transmitQueue', 1, 1 << 20);
    integer(options.statsIntervalMs ?? 1000, 'statsIntervalMs', 0, 1 << 30);
    const bufferBytes = integer(options.bufferBytes ?? 32 << 20, 'bufferBytes', 1 << 16, 1 << 30);
    // A partly filled block is handed over when blockTimeoutMs runs out, so a slow
    // trickle spends a block per timeout: the ring's block count, not its bytes, is how
    // long the loop may stall. Blocks just large enough for a whole slot keep it high.
    const blockBytes = Math.max(RING_BLOCK_BYTES, 2 ** Math.ceil(Math.log2(arena.slotSize + RING_FRAME_HEADER_BYTES)));
    const addon = loadAddon();
    let fanout: { group: number; mode: number; flags: number } | undefined;
    if (options.fanout) {
      const f = options.fanout;
      const mode = FANOUT_MODES[f.mode ?? 'hash'];
      if (!mode) throw new NetpdError('EINVAL', `fanout mode must be hash, cpu or lb, got "${String(f.mode)}"`);
      fanout = {
        group: integer(f.group, 'fanout.group', 0, 65535),
        mode: addon.fanout[mode],
        flags: (f.defrag ? addon.fanout.defrag : 0) | (f.rollover ? addon.fanout.rollover : 0),
      };
    }
    let native: NativeSocket;
    try {
      native = new addon.PacketSocket({
        ifname: iface,
        receive: options.transmitOnly !== true,
        promiscuous: options.promiscuous ?? true,
        snaplen,
        rxMode: options.rxMode ?? 'ring',
        txMode: options.txMode ?? 'mmsg',
        ringBytes: Math.max(bufferBytes, 2 * blockBytes),
        blockBytes,
        blockTimeoutMs: integer(options.blockTimeoutMs ?? 2, 'blockTimeoutMs', 1, 60000),
        rcvbufBytes: bufferBytes,
        burst,
        maxFrameBytes: arena.slotSize,
        ignoreOutgoing: direction === 'in',
        direction,
        qdiscBypass: options.qdiscBypass ?? false,
        filter: options.filter === undefined ? undefined : kernelFilter(options.filter, snaplen, iface === 'any'),
        fanout,
      });
    } catch (err) {
      throw openError(iface, err);
    }
    return new AfPacketSource(iface, native, arena, options, snaplen);
  }

  /**
   * The network interfaces, in the kernel's index order, then the "any" pseudo-device,
   * as `tcpdump -D` lists them (from /sys/class/net). Throws ENOTSUP off Linux.
   */
  static interfaces(): NetInterface[] {
    if (process.platform !== 'linux') throw new NetpdError('ENOTSUP', `listing interfaces reads Linux's /sys/class/net; this is ${process.platform}`);
    const list: NetInterface[] = [];
    for (const name of readdirSync(SYS_NET)) {
      let flags: number, index: number, hwType: number, operstate: string;
      try {
        flags = Number(readFileSync(`${SYS_NET}/${name}/flags`, 'utf8').trim());
        operstate = readFileSync(`${SYS_NET}/${name}/operstate`, 'utf8').trim();
        index = Number(readFileSync(`${SYS_NET}/${name}/ifindex`, 'utf8').trim());
        hwType = Number(readFileSync(`${SYS_NET}/${name}/type`, 'utf8').trim());
      } catch {
        continue; // gone while we looked
      }
      const linkType = ARPHRD_LINKTYPE[hwType] ?? LINKTYPE_LINUX_SLL;
      list.push({
        // IFF_RUNNING is not in sysfs's flags: the kernel's dev_get_flags adds it when the
        // device is up and its operational state is up (or unknown, as loopback's is).
        index, name, up: (flags & IFF_UP) !== 0, running: (flags & IFF_UP) !== 0 && (operstate === 'up' || operstate === 'unknown'),
        loopback: (flags & IFF_LOOPBACK) !== 0,
        linkType, linkTypeName: linkTypeName(linkType),
      });
    }
    list.sort((a, b) => a.index - b.index);
    list.push({ index: 0, name: 'any', up: true, running: true, loopback: false, linkType: LINKTYPE_LINUX_SLL, linkTypeName: 'LINUX_SLL' });
    return list;
  }

  /**
   * Replaces the kernel filter (an expression, compiled for this source's link type, or
   * a classic BPF program; null removes it) on the open socket in one atomic swap: no
   * frame is lost, and frames the old filter accepted before the swap are still
   * delivered. Throws EFILTER/EBADPROG for a bad filter (the old one stays), ECLOSED
   * on a closed source.
   */
  setFilter(filter: string | BpfProgram | null): void {
    const words = filter === null ? null : kernelFilter(filter, this.snaplen, this.linkType === LINKTYPE_LINUX_SLL);
    const native = this.live();
    try {
      native.setFilter(words);
    } catch (err) {
      if (!isNativeError(err)) throw err;
      throw new NetpdError('EIO', `replacing the kernel filter on ${this.name} failed: ${err.message}`, { cause: err });
    }
  }

  /** True until close(). */
  get open(): boolean {
    return this.native !== null;
  }

  /** The transmit netio: pushed packets are retained, sent in bursts, then released. */
  get transmit(): Netio {
    return this.transmitNetio;
  }

  /**
   * Sends vec[0..n) and releases the references of the frames the kernel took (and of
   * frames the link refused, counted in sendErrors). Returns how many it consumed,
   * from the front; the rest (kernel busy) are still the caller's.
   */
  send(vec: Uint32Array, n: number): number {
    return this.sendAt(this.arena.addressOf(vec, n), n);
  }

  private sendAt(addr: number, n: number): number {
    const native = this.live();
    const { core, base } = this.arena;
    let done = 0;
    while (done < n) {
      const r = native.send(addr + done * 4, n - done);
      if (r > 0) {
        const words = this.arena.words;
        for (let i = 0, at = (addr >>> 2) + done; i < r; i++) this.counters.sentBytes += this.arena.capLen(words[at + i]);
        core.arena_free_burst(base, addr + done * 4, r);
        this.counters.sent += r;
        done += r;
      } else if (r < 0) {
        core.arena_free_burst(base, addr + done * 4, 1);
        this.counters.sendErrors++;
        done++;
      } else {
        break;
      }
    }
    return done;
  }

  private queue(slot: number): void {
    if (this.native === null || this.txQueued === this.txVec.length) {
      this.counters.transmitDrops++;
      return;
    }
    this.arena.retain(slot);
    this.txVec[this.txQueued++] = slot;
    if (this.txQueued >= this.burst) this.flush();
    else this.scheduleFlush();
  }

  /** Sends what the transmit netio holds; returns how many are still queued. */
  flush(): number {
    if (this.txQueued === 0 || this.native === null) return this.txQueued;
    const sent = this.sendAt(this.txVec.byteOffset, this.txQueued);
    this.txVec.copyWithin(0, sent, this.txQueued);
    this.txQueued -= sent;
    if (this.txQueued > 0) this.scheduleFlush();
    return this.txQueued;
  }

  private scheduleFlush(): void {
    if (this.txScheduled) return;
    this.txScheduled = true;
    setImmediate(() => {
      this.txScheduled = false;
      this.flush();
    });
  }

  private onReadable(status: number): void {
    if (this.native === null) return;
    // libuv reports a socket error (EPOLLERR) as a negative status and stops polling; frames the
    // kernel queued before the error are still there, so take them first, then name the error.
    let taken: number;
    try {
      taken = this.drain();
    } catch (err) {
      // recvmmsg hands the socket's error (ENETDOWN) to the first read after it.
      this.socketFailed(err);
      return;
    }
    if (this.native === null) return;
    if (status >= 0 && taken > 0) return;
    const err = this.native.pendingError();
    if (err) this.fail(liveError(this.name, err));
    else if (status < 0) this.fail(new NetpdError('EIO', `polling ${this.name} failed (libuv status ${status}); the source is closed`));
  }

  /** Reads up to the budget of waiting frames now; returns how many were taken off the socket. */
  drain(): number {
    const native = this.live();
    const { core, base } = this.arena;
    let left = this.budget;
    let taken = 0;
    while (left > 0 && this.native !== null) {
      this.refill();
      if (this.stashed === 0) {
        // The arena is empty: take the frames off the socket so they are counted, not stuck.
        const d = native.discard(Math.min(left, this.burst));
        if (d === 0) break;
        this.counters.noslot += d;
        this.dispatcher?.countDrops('noslot', d);
        left -= d;
        taken += d;
        continue;
      }
      const want = Math.min(this.stashed, left);
      const k = native.receive(this.rxAddr, want);
      if (k === 0) break;
      this.deliver(k);
      left -= k;
      taken += k;
      if (k < want) break;
    }
    return taken;
  }

  /** Tops the stash up to a burst from the arena (one call into the core). */
  private refill(): void {
    if (this.stashed < this.burst) {
      this.stashed += this.arena.core.arena_alloc_burst(this.arena.base, this.rxAddr + this.stashed * 4, this.burst - this.stashed);
    }
  }

  private deliver(k: number): void {
    this.lent = k;
    try {
      if (this.dispatcher) this.dispatcher.dispatchBurst(this.rxVec, k);
      else if (this.onBurst) this.onBurst(this.rxVec, k);
    } catch (err) {
      // The dispatcher catches its owners' errors; what it throws is its own (ECLOSED, say).
      if (this.dispatcher && err instanceof NetpdError) {
        emitError(this, err);
      } else {
        const why = err instanceof Error ? err.message : String(err);
        emitError(this, new NetpdError('EOWNER', `the onBurst callback of the source on ${this.name} threw: ${why}; the source goes on`, { cause: err }));
      }
    } finally {
      this.reclaim(k);
    }
  }

  /**
   * Takes back the burst vec[0..k) lent out: slots no one else kept come straight back to
   * the stash, still warm in cache; if the source was closed meanwhile (close() kept
   * them for us), our references are dropped instead.
   */
  private reclaim(k: number): void {
    this.lent = 0;
    if (this.native === null) {
      this.arena.freeBurst(this.rxVec, k);
      this.stashed = 0;
      return;
    }
    const kept = this.arena.core.arena_reclaim_burst(this.arena.base, this.rxAddr, k);
    this.rxVec.copyWithin(kept, k, this.stashed);
    this.stashed -= k - kept;
  }

  /**
   * Received bursts, for `for await (const batch of source)` on a source opened without
   * a dispatcher or onBurst. Each PacketBatch (one reused object over the source's
   * receive vector) is valid until the next iteration, which gives its slots back:
   * retain() a packet to keep it. While the loop body runs nothing reads the socket:
   * frames wait in the kernel's ring. The loop ends when the source is closed; ending
   * the loop (break, throw, abort) closes the source, as Node's streams do. Throws the
   * NetpdError that closed the source (ENETDOWN: its interface went away), Node's
   * AbortError (name 'AbortError', code 'ABORT_ERR') once `signal` (default: the one
   * given to open) is aborted, and EINVAL on a source that delivers elsewhere or is
   * already being iterated.
   */
  async *bursts(options: { signal?: AbortSignal } = {}): AsyncGenerator<PacketBatch, void, undefined> {
    if (!this.pulled || !this.receiving) {
      throw new NetpdError('EINVAL', `the source on ${this.name} ${this.receiving ? 'delivers to its dispatcher or onBurst' : 'is transmit-only'}; open it with only an arena to iterate it`);
    }
    if (this.iterating) throw new NetpdError('EINVAL', `the source on ${this.name} is already being iterated`);
    const signal = options.signal ?? this.signal;
    this.iterating = true;
    const batch = new PacketBatch(this.arena, this.rxVec);
    const onAbort = () => this.wake?.();
    signal?.addEventListener('abort', onAbort);
    try {
      for (;;) {
        checkAborted(signal);
        if (this.failure) throw this.failure;
        const native = this.native;
        if (native === null) return;
        this.refill();
        if (this.stashed === 0) {
          // The arena is empty (the loop keeps what it retained): count the waiting frames as noslot.
          const d = native.discard(this.burst);
          this.counters.noslot += d;
          if (d === 0) await this.readable(native);
          continue;
        }
        const k = native.receive(this.rxAddr, this.stashed);
        if (k === 0) {
          await this.readable(native);
          continue;
        }
        batch.length = k;
        this.lent = k;
        yield batch;
        batch.length = 0;
        this.reclaim(k);
      }
    } catch (err) {
      if (isNativeError(err)) throw liveError(this.name, err);
      throw err;
    } finally {
      if (batch.length > 0) this.reclaim(batch.length);
      signal?.removeEventListener('abort', onAbort);
      this.iterating = false;
      this.close();
    }
  }

  /** Resolves when the socket has frames (or an error), or the source is closed or aborted. */
  private readable(native: NativeSocket): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
      native.poll((status) => {
        native.pause();
        if (status < 0) {
          const err = native.pendingError();
          this.fail(err ? liveError(this.name, err) : new NetpdError('EIO', `polling ${this.name} failed (libuv status ${status}); the source is closed`));
        }
        this.wake = null;
        resolve();
      });
    });
  }

  /** bursts() with the signal given to open(). */
  [Symbol.asyncIterator](): AsyncGenerator<PacketBatch, void, undefined> {
    return this.bursts();
  }

  /** close(), for `await using source = AfPacketSource.open(...)`. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  /** Counters; reading them also collects the kernel's (PACKET_STATISTICS). */
  stats(): AfPacketStats {
    this.collectStats();
    const c = this.counters;
    return {
      received: this.received.packets,
      bytes: this.received.bytes,
      kernel: { ...this.kernel },
      dropped: { kernel: this.kernel.drops, noslot: c.noslot },
      skipped: this.received.skipped,
      sent: c.sent,
      sentBytes: c.sentBytes,
      sendErrors: c.sendErrors,
      transmitDrops: c.transmitDrops,
    };
  }

  private refreshStats(): void {
    try {
      this.collectStats();
    } catch (err) {
      this.socketFailed(err);
    }
  }

  /** A call on the socket threw: an error of the socket closes the source and is reported; anything else is a bug. */
  private socketFailed(err: unknown): void {
    if (!isNativeError(err)) throw err;
    this.fail(liveError(this.name, err));
  }

  private collectStats(): void {
    if (this.native === null || !this.receiving) return;
    const s = this.native.stats();
    this.received = { packets: s.received, bytes: s.bytes, skipped: s.skipped };
    const newDrops = s.drops - this.kernel.drops;
    this.kernel = { packets: s.packets, drops: s.drops };
    if (newDrops > 0) this.dispatcher?.countDrops('kernel', newDrops);
  }

  /**
   * Stops receiving, drains what is already waiting (up to one budget), sends what
   * the transmit netio still holds if the kernel takes it (the rest is counted in
   * transmitDrops), collects the final kernel counters, frees every slot the source
   * holds and closes the sockets. Idempotent; emits 'close'.
   */
  close(): void {
    if (this.shutdown()) this.emit('close');
  }

  /** What close() does, without the event; false when already closed. */
  private shutdown(): boolean {
    const native = this.native;
    if (native === null) return false;
    native.poll(null);
    clearInterval(this.statsTimer);
    if (this.receiving) {
      // A pulled source's frames are its loop's to take: what is left stays in the ring.
      if (!this.pulled && this.lent === 0) {
        try { this.drain(); } catch { /* the socket may already be dead; its frames are the kernel's drops */ }
      }
      this.collectStats();
    }
    this.flush();
    if (this.txQueued > 0) {
      this.counters.transmitDrops += this.txQueued;
      this.arena.freeBurst(this.txVec, this.txQueued);
      this.txQueued = 0;
    }
    // Slots lent out right now are freed by reclaim() when the callback or loop body returns.
    if (this.stashed > this.lent) this.arena.freeBurst(this.rxVec.subarray(this.lent), this.stashed - this.lent);
    this.stashed = this.lent;
    this.native = null;
    native.close();
    this.signal?.removeEventListener('abort', this.onAbort);
    const wake = this.wake;
    this.wake = null;
    wake?.();
    return true;
  }

  /** The source failed: closed, then 'error' (thrown by a `for await` loop instead), then 'close'. */
  private fail(err: NetpdError): void {
    if (!this.shutdown()) return;
    if (this.iterating) this.failure = err;
    else emitError(this, err);
    this.emit('close');
  }

  private live(): NativeSocket {
    if (this.native === null) throw new NetpdError('ECLOSED', `the source on ${this.name} is closed`);
    return this.native;
  }
}

const SYS_NET = '/sys/class/net';
const IFF_UP = 0x1;
const IFF_LOOPBACK = 0x8;
/** ARPHRD_* (if_arp.h) to LINKTYPE_*, as libpcap's map_arphrd_to_dlt does for the common ones; others capture cooked. */
const ARPHRD_LINKTYPE: Record<number, number> = {
  1: 1, 772: 1,                                               // ETHER, LOOPBACK: EN10MB
  256: 101, 257: 101, 519: 101, 768: 101, 776: 101, 65534: 101, // SLIP, CSLIP, RAWIP, TUNNEL, SIT, NONE: RAW
  280: 227, 801: 105, 803: 127,                               // CAN, IEEE80211, IEEE80211_RADIOTAP
};


function integer(v: number, name: string, min: number, max: number): number {
  if (!Number.isInteger(v) || v < min || v > max) throw new NetpdError('EINVAL', `${name} must be an integer in ${min}..${max}, got ${v}`);
  return v;
}

/** The kernel filter as four u32 per instruction; `cooked` for the "any" device. */
function kernelFilter(filter: string | BpfProgram, snaplen: number, cooked: boolean): Uint32Array {
  // The kernel runs the filter after taking the outer VLAN tag off into metadata:
  // libpcap's live-Linux code tests it there (what tcpdump -d -i IFACE prints).
  const program = typeof filter === 'string'
    ? compileFilter(filter, { snaplen, vlanMetadata: true, ...(cooked ? { linkType: LINKTYPE_LINUX_SLL } : {}) })
    : filter;
  validateProgram(program);
  const words = new Uint32Array(program.length * 4);
  program.forEach((insn, i) => {
    const k = cooked ? cookedOffset(insn, filter) : insn.k >>> 0;
    words.set([insn.code, insn.jt, insn.jf, k], i * 4);
  });
  return words;
}

const BPF_LD = 0x00, BPF_LDX = 0x01, BPF_ABS = 0x20, BPF_IND = 0x40, BPF_MSH = 0xa0;
const SKF_AD_OFF = -0x1000, SKF_AD_PROTOCOL = 0, SKF_AD_PKTTYPE = 4;
const SLL_HDR_LEN = 16;

/**
 * libpcap's fix_offset for a cooked socket: the kernel filters the network-layer packet,
 * so a packet load's offset past the SLL header moves down by its 16 bytes, and the
 * header's packet type and protocol become the kernel's ancillary loads. Other header
 * bytes have no kernel equivalent: ENOTSUP naming the filter (netpd filters in the kernel only).
 */
function cookedOffset(insn: { code: number; k: number }, filter: string | BpfProgram): number {
  const k = insn.k >>> 0;
  const cls = insn.code & 0x07, mode = insn.code & 0xe0;
  if ((cls !== BPF_LD && cls !== BPF_LDX) || (mode !== BPF_ABS && mode !== BPF_IND && mode !== BPF_MSH)) return k;
  if (k >= (SKF_AD_OFF >>> 0)) return k;
  if (k >= SLL_HDR_LEN) return k - SLL_HDR_LEN;
  if (k === 0) return (SKF_AD_OFF + SKF_AD_PKTTYPE) >>> 0;
  if (k === 14) return (SKF_AD_OFF + SKF_AD_PROTOCOL) >>> 0;
  const what = typeof filter === 'string' ? `"${filter}"` : 'the program';
  throw new NetpdError('ENOTSUP', `${what} reads byte ${k} of the LINUX_SLL header, which the kernel cannot test on the "any" device (only the packet type and protocol); netpd runs capture filters in the kernel only`);
}

function isNativeError(err: unknown): err is NativeError {
  return err instanceof Error && typeof (err as NativeError).code === 'string' && typeof (err as NativeError).syscall === 'string';
}

function openError(iface: string, err: unknown): Error {
  if (!isNativeError(err)) return err instanceof Error ? err : new Error(String(err));
  const how = `${err.syscall}: ${err.code}`;
  switch (err.code) {
    case 'EPERM':
    case 'EACCES':
      return new NetpdError('EPERM', `opening a packet socket on ${iface} needs CAP_NET_RAW (${how}). Run as root, or grant the capability to node: sudo setcap cap_net_raw,cap_net_admin=eip "$(readlink -f "$(command -v node)")"`, { cause: err });
    case 'ENODEV':
      return new NetpdError('ENODEV', `no network interface named "${iface}" (${how}); see "ip link"`, { cause: err });
    case 'ENETDOWN':
      return new NetpdError('ENETDOWN', `interface ${iface} is down (${how}); bring it up with "ip link set ${iface} up"`, { cause: err });
    case 'EINVAL':
      if (err.syscall === 'PACKET_FANOUT') {
        return new NetpdError('EINVAL', `fanout group on ${iface} refused (${how}): a group exists with another mode or flags, or on another interface; every member must open it alike`, { cause: err });
      }
      break;
    case 'EAFNOSUPPORT':
      return new NetpdError('ENOTSUP', `interface ${iface} is not an Ethernet link; netpd captures Ethernet frames (${how})`, { cause: err });
  }
  return new NetpdError('EIO', `opening ${iface} failed: ${err.message}`, { cause: err, details: { syscall: err.syscall, errno: err.code } });
}

function liveError(iface: string, err: NativeError): NetpdError {
  if (EPOLL_ERRORS.includes(err.code)) {
    return new NetpdError('ENETDOWN', `interface ${iface} went down or was removed while open (${err.code}); the source is closed`, { cause: err });
  }
  return new NetpdError('EIO', `the packet socket on ${iface} failed: ${err.message}; the source is closed`, { cause: err });
}
