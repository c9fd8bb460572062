// A filter over a capture file whose interfaces may have different link types (a pcapng
// with an Ethernet, a Linux cooked and a raw-IP interface, say). libpcap 1.10 refuses
// such a file; Wireshark reads each packet under its own interface's link type, and so
// does netpd here: an expression is compiled once per link type met, when first met (most
// captures have one), and each slot is judged by the program of its interface's link
// type (arena ifIndex -> interfaces[ifIndex].linkType). A program given as such is
// used for every interface: it already says which link type it was written for.
// Expressions compile as libpcap compiles them for a capture file (`tcpdump -r`).
//
// A burst of one link type (the common case) runs as one core call. A mixed burst is
// gathered per link type into an arena vector, run, and scattered back: a core call
// per link type, not per packet, and nothing allocated per packet (the vectors grow
// only when a larger burst comes).

import { NetpdError } from '../errors.js';
import type { Arena } from '../arena.js';
import { BpfFilter, type BpfProgram } from '../bpf.js';
import type { PcapInterface } from '../pcap/reader.js';
import { compileFilter } from './compile.js';
import { parseFilter } from './parser.js';

export interface CaptureFilterOptions {
  /** Run the optimizer (tcpdump's default). */
  optimize?: boolean;
  /**
   * Byte order of the capture ('le' or 'be', as PcapReader.byteOrder says): only the
   * NULL link type's header depends on it. Default 'le'.
   */
  byteOrder?: 'le' | 'be';
}

export class CaptureFilter {
  private readonly arena: Arena;
  private readonly expression: string | null;
  private readonly options: CaptureFilterOptions;
  /** The filter of each link type met, or the given program's under key -1. */
  private readonly filters = new Map<number, BpfFilter>();
  /** The interfaces last seen, and the filter of each one met so far. */
  private interfaces: readonly PcapInterface[] = [];
  private byInterface: (BpfFilter | undefined)[] = [];
  // Gather/scatter space for mixed bursts: slots of one link type and their verdicts.
  private subVec: Uint32Array | null = null;
  private subOut: Uint32Array | null = null;
  private where = new Int32Array(0);

  /**
   * An expression is compiled once per link type met (lazily; a syntax error is
   * EFILTER at once); a program is used as given for every interface.
   */
  constructor(arena: Arena, filter: string | BpfProgram, options: CaptureFilterOptions = {}) {
    this.arena = arena;
    this.options = options;
    if (typeof filter === 'string') {
      parseFilter(filter);
      this.expression = filter;
    } else {
      this.expression = null;
      this.filters.set(-1, new BpfFilter(arena, filter));
    }
  }

  /**
   * out[i] = the filter's return value (0 = rejected) for slot vec[i], i < n; each
   * slot's interface is arena ifIndex -> interfaces[ifIndex].linkType. Throws ENOTSUP
   * naming the link type when an interface's link type cannot be compiled for, EFILTER
   * when the expression does not compile for it (in a capture of several link types,
   * one for which the optimizer proves that it accepts nothing just rejects its packets),
   * EINVAL for a slot whose interface is not in `interfaces`.
   */
  run(interfaces: readonly PcapInterface[], vec: Uint32Array, n: number, out: Uint32Array): void {
    if (n === 0) return;
    const only = this.filters.get(-1);
    if (only) {
      only.run(vec, n, out);
      return;
    }
    if (interfaces !== this.interfaces || interfaces.length !== this.byInterface.length) {
      this.interfaces = interfaces;
      this.byInterface = interfaces.map((iface) => this.filters.get(iface.linkType));
    }
    const first = this.filterOf(vec[0]);
    let mixed = false;
    for (let i = 1; i < n && !mixed; i++) mixed = this.filterOf(vec[i]) !== first;
    if (!mixed) {
      first.run(vec, n, out);
      return;
    }
    const [subVec, subOut] = this.reserve(n);
    const where = this.where;
    where.fill(-1, 0, n);
    for (let start = 0; start < n; start++) {
      if (where[start] !== -1) continue;
      const filter = this.filterOf(vec[start]);
      let k = 0;
      for (let i = start; i < n; i++) {
        if (where[i] === -1 && this.filterOf(vec[i]) === filter) {
          where[i] = k;
          subVec[k++] = vec[i];
        }
      }
      filter.run(subVec, k, subOut);
      for (let i = start; i < n; i++) if (this.filterOf(vec[i]) === filter) out[i] = subOut[where[i]];
    }
  }

  private filterOf(slot: number): BpfFilter {
    const ifIndex = this.arena.ifIndex(slot);
    const f = this.byInterface[ifIndex];
    if (f !== undefined) return f;
    if (ifIndex >= this.interfaces.length) {
      throw new NetpdError('EINVAL', `slot ${slot} belongs to interface ${ifIndex}, which the capture does not declare (${this.interfaces.length} interfaces)`);
    }
    return this.compileFor(ifIndex);
  }

  /** The filter for an interface whose link type was not met before. */
  private compileFor(ifIndex: number): BpfFilter {
    const linkType = this.interfaces[ifIndex].linkType;
    let filter = this.filters.get(linkType);
    if (!filter) {
      let program: BpfProgram;
      try {
        program = compileFilter(this.expression!, { linkType, optimize: this.options.optimize, byteOrder: this.options.byteOrder, savefile: true });
      } catch (e) {
        const several = this.interfaces.some((iface) => iface.linkType !== linkType);
        if (!(several && e instanceof NetpdError && e.details.reason === 'rejects-all')) throw e;
        program = REJECT_ALL;
      }
      filter = new BpfFilter(this.arena, program);
      this.filters.set(linkType, filter);
    }
    for (let i = 0; i < this.interfaces.length; i++) {
      if (this.interfaces[i].linkType === linkType) this.byInterface[i] = filter;
    }
    return filter;
  }

  private reserve(n: number): [Uint32Array, Uint32Array] {
    if (this.subVec === null || this.subOut === null || this.subVec.length < n) {
      this.subVec = this.arena.burstVector(n);
      this.subOut = this.arena.burstVector(n);
      this.where = new Int32Array(n);
    }
    return [this.subVec, this.subOut];
  }
}

const REJECT_ALL: BpfProgram = [{ code: 0x06, jt: 0, jf: 0, k: 0 }];
