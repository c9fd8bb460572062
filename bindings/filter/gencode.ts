// Code generation for pcap-filter expressions, following libpcap's gencode.c for
// Ethernet (DLT_EN10MB) so that netpd's unoptimized program is libpcap's unoptimized
// program, test for test and load for load.
//
// Each primitive becomes a small boolean tree (Cond) whose leaves are libpcap's
// "blocks": a few statements ending in one conditional jump. Trees are built in the
// order the primitives were written, because `vlan`, `mpls` and `pppoes` move the
// offsets every later primitive uses (libpcap's documented, if surprising, behaviour:
// `vlan or ip` tests ip inside the VLAN tag). wire() then turns the tree into a graph
// of blocks with true/false successors exactly as libpcap's gen_and/gen_or/gen_not
// backpatching does, and layout() linearizes it the way libpcap's icode_to_fcode does
// (blocks in reverse post-order, false edge explored first), inserting long jumps
// where a conditional jump reaches further than 255 instructions.
//
// Scratch memory registers are allocated like libpcap's alloc_reg (a rotating cursor
// over M[0..15]), so relations use the same M[] slots.
//
// A live Linux socket filter sees a frame after the kernel has taken its outer VLAN
// tag off into metadata, where only the ancillary loads SKF_AD_VLAN_TAG_PRESENT and
// SKF_AD_VLAN_TAG reach it; yet a tag the kernel left in place (say, a 0x9100 one)
// is still in the bytes. So with `vlanMetadata` the first `vlan` compiles as libpcap
// compiles it for a live Linux capture (gen_vlan_bpf_extensions): it tests the
// metadata first and the bytes second, and since only the packet knows which of the
// two held the tag, the offsets of the link-layer type and payload get a variable
// part, kept in a scratch register that starts at 0 (set at the top of the program,
// libpcap's insert_compute_vloffsets) and grows by 4 when the tag was in the bytes.
// Every load after that goes through X (`ldx M[r]; ld [x + k]`), as libpcap's loads
// relative to a variable offset do. The VLAN id test reads the id from metadata or
// from the bytes by a jump inside its block (gen_vlan_patch_vid_test): a Leaf may
// hold such block-local jumps among its statements, which emit.ts lays out in place
// and the optimizer keeps inside the block, as libpcap does.

import { NetpdError } from '../errors.js';
import type { BpfInstruction } from '../bpf.js';
import type { Arith, IdValue, Node, Proto, Qual } from './ast.js';
import { serviceToPort, protocolNumber } from './services.js';
import {
  LD, LDX, ST, ALU, JMP, W, H, B, IMM, ABS, IND, MEM, LEN, MSH, ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, NEG, MOD, XOR,
  JA, JEQ, JGT, JGE, JSET, SRC_K, SRC_X, TAX, SKF_AD_OFF,
} from './opcodes.js';

const ETHERMTU = 1500;
const SKF_AD_PKTTYPE = 4;
const SKF_AD_IFINDEX = 8;
const SKF_AD_VLAN_TAG = 44;
const SKF_AD_VLAN_TAG_PRESENT = 48;
const PACKET_OUTGOING = 4;
const PPP_MPLS_UCAST = 0x0281;
/** Linux cooked headers: protocol 4 means an 802.2 LLC header follows, 1 raw 802.3; packet type 4 is "sent by us". */
const SLL_P_802_2 = 0x0004;
const SLL_P_802_3 = 0x0001;
const SLL_OUTGOING = 4;
/** Address families in DLT_NULL/DLT_LOOP headers: IPv4 is 2 everywhere, IPv6 is not. */
const AF_INET = 2;
const AF_INET6_BSD = 24;
const AF_INET6_FREEBSD = 28;
const AF_INET6_DARWIN = 30;
const AF_INET6_LINUX = 10;
const ETHERTYPE = {
  IP: 0x0800, ARP: 0x0806, REVARP: 0x8035, IPV6: 0x86dd, ATALK: 0x809b, AARP: 0x80f3, DN: 0x6003,
  SCA: 0x6007, LAT: 0x6004, MOPDL: 0x6001, MOPRC: 0x6002, VLAN: 0x8100, QINQ_AD: 0x88a8, QINQ_9100: 0x9100,
  MPLS: 0x8847, PPPOED: 0x8863, PPPOES: 0x8864,
} as const;
const LLCSAP = { ISONS: 0xfe, IP: 0x06, NETBEUI: 0xf0, IPX: 0xe0, STP: 0x42 } as const;
const IPPROTO = { ICMP: 1, IGMP: 2, TCP: 6, UDP: 17, IGRP: 9, PIM: 103, VRRP: 112, ICMPV6: 58, AH: 51, ESP: 50, SCTP: 132, FRAGMENT: 44 } as const;
const ISO = { CLNP: 0x81, ESIS: 0x82, ISIS: 0x83 } as const;
const LLC_S_SUBTYPES: Record<string, number> = { rr: 0x01, rnr: 0x05, rej: 0x09 };
const LLC_U_SUBTYPES: Record<string, number> = { ui: 0x03, ua: 0x63, disc: 0x43, dm: 0x0f, sabme: 0x6f, test: 0xe3, xid: 0xaf, frmr: 0x87 };

/** Names `ether proto \NAME` accepts (libpcap's eproto_db and llc_db). */
const ETHER_PROTOCOLS: Record<string, number> = {
  ip: ETHERTYPE.IP, ip6: ETHERTYPE.IPV6, arp: ETHERTYPE.ARP, rarp: ETHERTYPE.REVARP, atalk: ETHERTYPE.ATALK,
  aarp: ETHERTYPE.AARP, decnet: ETHERTYPE.DN, sca: ETHERTYPE.SCA, lat: ETHERTYPE.LAT, mopdl: ETHERTYPE.MOPDL,
  moprc: ETHERTYPE.MOPRC, iso: LLCSAP.ISONS, stp: LLCSAP.STP, ipx: LLCSAP.IPX, netbeui: LLCSAP.NETBEUI,
  pup: 0x0200, sprite: 0x0500, loopback: 0x9000,
};

// ---- The block graph ----------------------------------------------------------------

/**
 * A libpcap block: statements, then one conditional jump. A statement may itself be
 * a jump (only the live VLAN id test makes one) whose targets are statements of the
 * same block or its final jump; its jt/jf (or k, for `ja`) count instructions from
 * the next one, as in the emitted program.
 */
export interface Leaf {
  t: 'leaf';
  stmts: BpfInstruction[];
  jump: number;
  k: number;
}
/** A condition: a block, or blocks combined as libpcap's gen_and / gen_or / gen_not do. */
export type Cond = Leaf | { t: 'and' | 'or'; l: Cond; r: Cond } | { t: 'not'; e: Cond };

const stmt = (code: number, k = 0): BpfInstruction => ({ code, jt: 0, jf: 0, k: k >>> 0 });
const leaf = (stmts: BpfInstruction[], jump: number, k: number): Leaf => ({ t: 'leaf', stmts, jump, k: k >>> 0 });
const and = (l: Cond, r: Cond): Cond => ({ t: 'and', l, r });
const or = (l: Cond, r: Cond): Cond => ({ t: 'or', l, r });
const not = (e: Cond): Cond => ({ t: 'not', e });
/** gen_true / gen_false: a block whose test is decided by a constant. */
const uncond = (sense: boolean): Leaf => leaf([stmt(LD | IMM, sense ? 0 : 1)], JMP | JEQ | SRC_K, 0);
const bswap32 = (v: number): number => (((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24)) >>> 0;

/** `into` with the elements of `from` appended, in a loop (a spread argument list overflows the stack past ~100,000). */
function append<T>(into: T[], from: readonly T[]): T[] {
  for (const x of from) into.push(x);
  return into;
}

/**
 * Folds a tree bottom up, each node's children left to right before it, on an explicit
 * stack: expression trees are as deep as a chain of `or`s or of `+`s is long.
 */
function foldTree<T, R>(root: T, children: (t: T) => readonly T[], combine: (t: T, results: R[]) => R): R {
  const todo: { t: T; built: boolean }[] = [{ t: root, built: false }];
  const done: R[] = [];
  while (todo.length > 0) {
    const { t, built } = todo.pop()!;
    const kids = children(t);
    if (!built && kids.length > 0) {
      todo.push({ t, built: true });
      for (let i = kids.length - 1; i >= 0; i--) todo.push({ t: kids[i], built: false });
    } else {
      done.push(combine(t, done.splice(done.length - kids.length)));
    }
  }
  return done[0];
}

/** The block a condition starts with (libpcap's b->head): its leftmost leaf. */
function head(c: Cond): Leaf {
  while (c.t !== 'leaf') c = c.t === 'not' ? c.e : c.l;
  return c;
}

/** An arithmetic value computed into scratch register `reg`, with its protocol check. */
interface Value {
  stmts: BpfInstruction[];
  reg: number;
  check: Cond | null;
}

/** Where a load's offset is measured from (libpcap's enum e_offrel). */
type Rel = 'linkhdr' | 'linktype' | 'linkpl' | 'linkpl_nosnap' | 'prevmpls' | 'tran4' | 'tran6' | 'llc';

/**
 * An offset from the start of the packet (libpcap's bpf_abs_offset): a constant part,
 * plus, when `reg` is set, a variable part kept in scratch register M[reg].
 */
interface AbsOffset {
  c: number;
  reg: number | null;
}

/**
 * The link types netpd compiles for, by libpcap's names. Each says where the link-layer
 * type field and the payload are (libpcap's init_linktype), and how it names the link
 * type in its errors (pcap_datalink_val_to_description). `linktype` -1 is libpcap's
 * OFFSET_NOT_SET: raw IP has no type field, and gen_linktype never loads it there.
 */
export const LINK_LAYERS = {
  EN10MB: { description: 'Ethernet', linktype: 12, linkpl: 14, nlNosnap: 3 },
  LINUX_SLL: { description: 'Linux cooked v1', linktype: 14, linkpl: 16, nlNosnap: 0 },
  LINUX_SLL2: { description: 'Linux cooked v2', linktype: 0, linkpl: 20, nlNosnap: 0 },
  RAW: { description: 'Raw IP', linktype: -1, linkpl: 0, nlNosnap: 0 },
  IPV4: { description: 'Raw IPv4', linktype: -1, linkpl: 0, nlNosnap: 0 },
  IPV6: { description: 'Raw IPv6', linktype: -1, linkpl: 0, nlNosnap: 0 },
  NULL: { description: 'BSD loopback', linktype: 0, linkpl: 4, nlNosnap: 0 },
  LOOP: { description: 'OpenBSD loopback', linktype: 0, linkpl: 4, nlNosnap: 0 },
} as const;
export type LinkLayer = keyof typeof LINK_LAYERS;

export interface GenOptions {
  /** The netmask `ip broadcast` uses (tcpdump passes 0 when it does not know one). */
  netmask: number;
  /** The outer VLAN tag may be in the kernel's metadata (see the essay above). */
  vlanMetadata: boolean;
  /** The link type of the packets (default EN10MB). */
  linkType?: LinkLayer;
  /**
   * The byte order of the capture file the packets come from. Only DLT_NULL cares: its
   * address family word is in the byte order of the machine that wrote the file, so
   * libpcap compares it with the family in the file's byte order. Default 'le'.
   */
  byteOrder?: 'le' | 'be';
  /**
   * The packets come from a capture file, as with `tcpdump -r FILE`: libpcap then refuses
   * inbound/outbound/ifindex where the link-layer header does not hold them, and takes
   * any BSD's IPv6 family in NULL/LOOP headers. Default false: libpcap's code for a live
   * capture (`tcpdump -y TYPE -d`), which reads those from the kernel's ancillary data,
   * with Linux's AF_INET6.
   */
  savefile?: boolean;
}

export function filterError(message: string, pos?: number): NetpdError {
  return new NetpdError('EFILTER', message, pos === undefined ? {} : { details: { position: pos } });
}

export class CodeGen {
  // Offsets, as in libpcap's compiler state, set for the link type by the constructor.
  private offLinkhdr: AbsOffset = { c: 0, reg: null };
  private offLinktype: AbsOffset;
  private offLinkpl: AbsOffset;
  private offNl = 0;
  private offNlNosnap: number;
  private labelStackDepth = 0;
  private vlanStackDepth = 0;
  private isPppoes = false;
  /** Some offset became variable at run time (libpcap's is_vlan_vloffset). */
  private vlanVloffset = false;
  private readonly regUsed = new Array<boolean>(16).fill(false);
  private curReg = 0;
  private readonly netmask: number;
  private readonly vlanMetadata: boolean;
  private readonly link: LinkLayer;
  private readonly bigEndianFile: boolean;
  private readonly savefile: boolean;

  constructor(options: GenOptions) {
    this.netmask = options.netmask >>> 0;
    this.vlanMetadata = options.vlanMetadata;
    this.link = options.linkType ?? 'EN10MB';
    this.bigEndianFile = options.byteOrder === 'be';
    this.savefile = options.savefile === true;
    const layout = LINK_LAYERS[this.link];
    this.offLinktype = { c: layout.linktype, reg: null };
    this.offLinkpl = { c: layout.linkpl, reg: null };
    this.offNlNosnap = layout.nlNosnap;
  }

  /** Builds the condition for a whole expression, primitives in the order written. */
  gen(tree: Node): Cond {
    const c = this.node(tree);
    if (this.vlanVloffset) {
      // The variable parts start at 0, before the first test (libpcap's
      // insert_compute_vloffsets; after `pppoes` the two registers are one).
      const init = [stmt(LD | W | IMM, 0), stmt(ST, this.offLinkpl.reg!), stmt(ST, this.offLinktype.reg!)];
      const root = head(c);
      root.stmts = [...init, ...root.stmts];
    }
    return c;
  }

  /** The condition of a tree, primitives generated in the order written. */
  private node(root: Node): Cond {
    return foldTree<Node, Cond>(root, (n) => (n.t === 'and' || n.t === 'or' ? [n.l, n.r] : n.t === 'not' ? [n.e] : []), (n, [l, r]) => {
      switch (n.t) {
        case 'and': return and(l, r);
        case 'or': return or(l, r);
        case 'not': return not(l);
        default: return this.primitive(n);
      }
    });
  }

  private primitive(node: Exclude<Node, { t: 'and' | 'or' | 'not' }>): Cond {
    switch (node.t) {
      case 'id': return this.genId(node.q, node.v, node.pos);
      case 'proto': return this.protoAbbrev(node.proto, node.pos);
      case 'rel': return this.relation(node.code, node.l, node.r, node.reversed);
      case 'broadcast': return this.broadcast(node.proto, node.pos);
      case 'multicast': return this.multicast(node.proto, node.pos);
      case 'less': return not(leaf([stmt(LD | W | LEN)], JMP | JGT | SRC_K, node.value));
      case 'greater': return leaf([stmt(LD | W | LEN)], JMP | JGE | SRC_K, node.value);
      case 'byte': return this.byteop(node.op, node.index, node.value);
      case 'vlan': return this.vlan(node.value, node.pos);
      case 'mpls': return this.mpls(node.value, node.pos);
      case 'pppoes': return this.pppoes(node.value, node.pos);
      case 'pppoed': return this.linktype(ETHERTYPE.PPPOED);
      case 'llc': return this.llc(node.kind, node.pos);
      case 'outbound': return this.direction(true);
      case 'inbound': return this.direction(false);
      case 'ifindex': return this.ifindex(node.value);
      case 'unsupported': throw filterError(`"${node.what}" is not supported on ${this.description()} captures`, node.pos);
    }
  }

  // ---- loads and comparisons (gen_load_a, gen_ncmp, gen_cmp, gen_mcmp, gen_bcmp) ----

  private load(rel: Rel, offset: number, size: number): BpfInstruction[] {
    switch (rel) {
      case 'linkhdr': return this.loadAbs(this.offLinkhdr, offset, size);
      case 'linktype': return this.loadAbs(this.offLinktype, offset, size);
      case 'llc': return this.loadAbs(this.offLinkpl, offset, size);
      case 'linkpl': return this.loadAbs(this.offLinkpl, this.offNl + offset, size);
      case 'linkpl_nosnap': return this.loadAbs(this.offLinkpl, this.offNlNosnap + offset, size);
      case 'prevmpls': return this.loadAbs(this.offLinkpl, this.offNl - 4 + offset, size);
      case 'tran4': return [...this.loadxIpHdrLen(), stmt(LD | IND | size, this.offLinkpl.c + this.offNl + offset)];
      case 'tran6': return this.loadAbs(this.offLinkpl, this.offNl + 40 + offset, size);
    }
  }

  /** A load at `offset` past `off` (gen_load_absoffsetrel): through X when `off` has a variable part. */
  private loadAbs(off: AbsOffset, offset: number, size: number): BpfInstruction[] {
    if (off.reg === null) return [stmt(LD | ABS | size, off.c + offset)];
    return [stmt(LDX | MEM, off.reg), stmt(LD | IND | size, off.c + offset)];
  }

  /** X = the IPv4 header length plus the payload offset's variable part (gen_loadx_iphdrlen). */
  private loadxIpHdrLen(): BpfInstruction[] {
    const at = this.offLinkpl.c + this.offNl;
    if (this.offLinkpl.reg === null) return [stmt(LDX | MSH | B, at)];
    // `ldxb 4*([k]&0xf)` takes no index: compute the length in A and add X to it.
    return [
      stmt(LDX | MEM, this.offLinkpl.reg), stmt(LD | IND | B, at), stmt(ALU | AND | SRC_K, 0xf),
      stmt(ALU | LSH | SRC_K, 2), stmt(ALU | ADD | SRC_X), stmt(TAX),
    ];
  }

  /** X = `index`'s value plus the variable part of `off`, if any (how gen_load_internal indexes). */
  private indexX(off: AbsOffset, index: number): BpfInstruction[] {
    if (off.reg === null) return [stmt(LDX | MEM, index)];
    return [stmt(LDX | MEM, off.reg), stmt(LD | MEM, index), stmt(ALU | ADD | SRC_X), stmt(TAX)];
  }

  private ncmp(rel: Rel, offset: number, size: number, mask: number, jtype: number, reverse: boolean, v: number): Cond {
    const stmts = this.load(rel, offset, size);
    if (mask >>> 0 !== 0xffffffff) stmts.push(stmt(ALU | AND | SRC_K, mask));
    const b = leaf(stmts, JMP | jtype | SRC_K, v);
    return reverse && (jtype === JGT || jtype === JGE) ? not(b) : b;
  }

  private cmp(rel: Rel, offset: number, size: number, v: number): Cond {
    return this.ncmp(rel, offset, size, 0xffffffff, JEQ, false, v);
  }
  private mcmp(rel: Rel, offset: number, size: number, v: number, mask: number): Cond {
    return this.ncmp(rel, offset, size, mask, JEQ, false, v);
  }

  /** Compares `bytes` at offset, four, then two, then one byte at a time from the end. */
  private bcmp(rel: Rel, offset: number, bytes: number[]): Cond {
    let b: Cond | null = null;
    let size = bytes.length;
    const push = (c: Cond) => { b = b ? and(b, c) : c; };
    while (size >= 4) {
      const p = size - 4;
      push(this.cmp(rel, offset + p, W, ((bytes[p] << 24) | (bytes[p + 1] << 16) | (bytes[p + 2] << 8) | bytes[p + 3]) >>> 0));
      size -= 4;
    }
    while (size >= 2) {
      const p = size - 2;
      push(this.cmp(rel, offset + p, H, (bytes[p] << 8) | bytes[p + 1]));
      size -= 2;
    }
    if (size > 0) push(this.cmp(rel, offset, B, bytes[0]));
    return b!;
  }

  // ---- link layer ----------------------------------------------------------------------

  /** What libpcap calls the link type in errors: after `pppoes` it is PPP. */
  private description(): string {
    return this.isPppoes ? 'PPP' : LINK_LAYERS[this.link].description;
  }

  /** The link layer in force is Ethernet (not PPP inside PPPoE). */
  private ethernet(): boolean {
    return this.link === 'EN10MB' && !this.isPppoes;
  }

  /** gen_linktype: the packet's link layer carries `llProto` (an Ethertype, or an LLC SAP if <= 1500). */
  private linktype(llProto: number): Cond {
    if (this.labelStackDepth > 0) return this.mplsLinktype(llProto);
    if (this.isPppoes) return this.cmp('linktype', 0, H, ethertypeToPpp(llProto));
    switch (this.link) {
      case 'EN10MB': return this.etherLinktype(llProto);
      case 'LINUX_SLL': return this.sllLinktype(llProto);
      // libpcap 1.10 has no case for SLL2: its default compares the type field, SAPs too.
      case 'LINUX_SLL2': return this.cmp('linktype', 0, H, llProto);
      // No type field: the IP version nibble says which IP it is; nothing else is carried.
      case 'RAW':
        if (llProto === ETHERTYPE.IP) return this.mcmp('linkhdr', 0, B, 0x40, 0xf0);
        if (llProto === ETHERTYPE.IPV6) return this.mcmp('linkhdr', 0, B, 0x60, 0xf0);
        return uncond(false);
      case 'IPV4': return uncond(llProto === ETHERTYPE.IP);
      case 'IPV6': return uncond(llProto === ETHERTYPE.IPV6);
      case 'NULL': case 'LOOP':
        if (llProto === ETHERTYPE.IP) return this.loopback(AF_INET);
        // IPv6's family differs between systems; a capture file may come from any BSD.
        if (llProto === ETHERTYPE.IPV6) {
          if (!this.savefile) return this.loopback(AF_INET6_LINUX);
          const b1 = or(this.loopback(AF_INET6_BSD), this.loopback(AF_INET6_FREEBSD));
          return or(this.loopback(AF_INET6_DARWIN), b1);
        }
        return uncond(false);
    }
  }

  /**
   * gen_loopback_linktype: the 4-byte address family. LOOP writes it in network byte
   * order; NULL in the writing machine's, i.e. the file's, which BPF's big-endian load
   * reads swapped when the file is little-endian.
   */
  private loopback(af: number): Cond {
    const v = this.link === 'NULL' && !this.bigEndianFile ? bswap32(af) : af;
    return this.cmp('linkhdr', 0, W, v);
  }

  /** gen_linux_sll_linktype: the protocol field holds an Ethertype, or 4 (802.2 LLC follows) or 1 (raw 802.3). */
  private sllLinktype(llProto: number): Cond {
    switch (llProto) {
      case LLCSAP.ISONS: case LLCSAP.IP: case LLCSAP.NETBEUI:
        return and(this.cmp('linktype', 0, H, SLL_P_802_2), this.cmp('llc', 0, H, (llProto << 8) | llProto));
      case LLCSAP.IPX: {
        let b1 = or(this.cmp('llc', 0, B, LLCSAP.IPX), this.snap(0x000000, 0x8137));
        b1 = and(this.cmp('linktype', 0, H, SLL_P_802_2), b1);
        b1 = or(this.cmp('linktype', 0, H, SLL_P_802_3), b1);
        return or(this.cmp('linktype', 0, H, 0x8137), b1);
      }
      case ETHERTYPE.ATALK: case ETHERTYPE.AARP: {
        const b0 = this.cmp('linktype', 0, H, SLL_P_802_2);
        const snap = llProto === ETHERTYPE.ATALK ? this.snap(0x080007, ETHERTYPE.ATALK) : this.snap(0x000000, ETHERTYPE.AARP);
        return or(this.cmp('linktype', 0, H, llProto), and(b0, snap));
      }
      default:
        if (llProto <= ETHERMTU) return and(this.cmp('linktype', 0, H, SLL_P_802_2), this.cmp('linkhdr', this.offLinkpl.c, B, llProto));
        return this.cmp('linktype', 0, H, llProto);
    }
  }

  /** gen_ether_linktype: the type/length field holds an Ethertype, or a length and 802.2 LLC follows. */
  private etherLinktype(llProto: number): Cond {
    switch (llProto) {
      case LLCSAP.ISONS: case LLCSAP.IP: case LLCSAP.NETBEUI:
        return and(not(this.ncmp('linktype', 0, H, 0xffffffff, JGT, false, ETHERMTU)), this.cmp('llc', 0, H, (llProto << 8) | llProto));
      case LLCSAP.IPX: {
        // Ethernet II with the IPX type, or 802.3 carrying SNAP, the IPX SAP, or raw
        // "Netware 802.3" (0xffff).
        const llc = or(this.cmp('llc', 0, B, LLCSAP.IPX), this.cmp('llc', 0, H, 0xffff));
        const e = or(this.snap(0x000000, 0x8137), llc);
        const b1 = and(not(this.ncmp('linktype', 0, H, 0xffffffff, JGT, false, ETHERMTU)), e);
        return or(this.cmp('linktype', 0, H, 0x8137), b1);
      }
      case ETHERTYPE.ATALK: case ETHERTYPE.AARP: {
        const snap = llProto === ETHERTYPE.ATALK ? this.snap(0x080007, ETHERTYPE.ATALK) : this.snap(0x000000, ETHERTYPE.AARP);
        const b1 = and(not(this.ncmp('linktype', 0, H, 0xffffffff, JGT, false, ETHERMTU)), snap);
        return or(this.cmp('linktype', 0, H, llProto), b1);
      }
      default:
        if (llProto <= ETHERMTU) {
          return and(not(this.ncmp('linktype', 0, H, 0xffffffff, JGT, false, ETHERMTU)), this.cmp('linktype', 2, B, llProto));
        }
        return this.cmp('linktype', 0, H, llProto);
    }
  }

  // An 802.2 SNAP header (AA AA 03, OUI, type) at the start of the link payload.
  private snap(orgcode: number, ptype: number): Cond {
    return this.bcmp('llc', 0, [0xaa, 0xaa, 0x03, (orgcode >> 16) & 0xff, (orgcode >> 8) & 0xff, orgcode & 0xff, (ptype >> 8) & 0xff, ptype & 0xff]);
  }

  private mplsLinktype(llProto: number): Cond {
    switch (llProto) {
      case ETHERTYPE.IP:
        return and(this.mcmp('linkpl', -2, B, 0x01, 0x01), this.mcmp('linkpl', 0, B, 0x40, 0xf0));
      case ETHERTYPE.IPV6:
        return and(this.mcmp('linkpl', -2, B, 0x01, 0x01), this.mcmp('linkpl', 0, B, 0x60, 0xf0));
      default:
        throw filterError('unsupported protocol over mpls');
    }
  }

  private vlan(vid: number | undefined, pos: number): Cond {
    if (this.labelStackDepth > 0) throw filterError('no VLAN match after MPLS', pos);
    if (!this.ethernet()) throw filterError(`no VLAN support for ${this.description()}`, pos);
    // Only the outermost tag can be in metadata (a later `vlan` looks past the first).
    const outer = this.vlanMetadata && this.vlanStackDepth === 0;
    this.vlanStackDepth++;
    const tpid = or(or(this.linktype(ETHERTYPE.VLAN), this.linktype(ETHERTYPE.QINQ_AD)), this.linktype(ETHERTYPE.QINQ_9100));
    const vidTest = vid === undefined ? null : this.vlanIdTest(vid, pos);
    if (!outer) {
      this.offLinkpl.c += 4;
      this.offLinktype.c += 4;
      return vidTest ? and(tpid, vidTest) : tpid;
    }
    // gen_vlan_bpf_extensions: the tag is in metadata, or else in the bytes, and only
    // in the second case do the offsets move on (by their variable parts, before the
    // TPID tests, which the move must not affect: they are made first).
    const present = leaf([stmt(LD | B | ABS, SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT)], JMP | JEQ | SRC_K, 1);
    this.vlanVloffset = true;
    const shift = [...this.vloffsetAdd(this.offLinkpl, 4), ...this.vloffsetAdd(this.offLinktype, 4)];
    const first = head(tpid);
    first.stmts = [...shift, ...first.stmts];
    const b = or(present, tpid);
    if (!vidTest) return b;
    // gen_vlan_patch_vid_test: with the tag in metadata, take the TCI from there and
    // jump to the mask, over the load from the bytes.
    const fromBytes = vidTest.stmts;
    vidTest.stmts = [
      stmt(LD | B | ABS, SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT),
      { code: JMP | JEQ | SRC_K, jt: 0, jf: 2, k: 1 },
      stmt(LD | B | ABS, SKF_AD_OFF + SKF_AD_VLAN_TAG),
      stmt(JMP | JA, fromBytes.length - 1),
      ...fromBytes,
    ];
    return and(b, vidTest);
  }

  private vlanIdTest(vid: number, pos: number): Leaf {
    if (vid > 0x0fff) throw filterError(`VLAN tag ${vid} greater than maximum 4095`, pos);
    return leaf([...this.load('linkpl', 0, H), stmt(ALU | AND | SRC_K, 0x0fff)], JMP | JEQ | SRC_K, vid);
  }

  /** Makes `off` variable (if it is not) and adds `v` to its variable part (gen_vlan_vloffset_add). */
  private vloffsetAdd(off: AbsOffset, v: number): BpfInstruction[] {
    off.reg ??= this.allocReg();
    return [stmt(LD | MEM, off.reg), stmt(ALU | ADD | SRC_K, v), stmt(ST, off.reg)];
  }

  private mpls(label: number | undefined, pos: number): Cond {
    // Inside PPPoE the link type is PPP, whose MPLS protocol number differs.
    if (this.labelStackDepth === 0 && !this.isPppoes && this.link !== 'EN10MB') throw filterError(`no MPLS support for ${this.description()}`, pos);
    let b: Cond = this.labelStackDepth > 0
      ? this.mcmp('prevmpls', 2, B, 0, 0x01)
      : this.linktype(this.isPppoes ? PPP_MPLS_UCAST : ETHERTYPE.MPLS);
    if (label !== undefined) {
      if (label > 0xfffff) throw filterError(`MPLS label ${label} greater than maximum 1048575`, pos);
      b = and(b, this.mcmp('linkpl', 0, W, (label << 12) >>> 0, 0xfffff000));
    }
    this.offNlNosnap += 4;
    this.offNl += 4;
    this.labelStackDepth++;
    return b;
  }

  private pppoes(session: number | undefined, pos: number): Cond {
    let b = this.linktype(ETHERTYPE.PPPOES);
    if (session !== undefined) {
      if (session > 0xffff) throw filterError(`PPPoE session number ${session} greater than maximum 65535`, pos);
      b = and(b, this.mcmp('linkpl', 0, W, session, 0x0000ffff));
    }
    this.isPppoes = true;
    // The link layer is now PPP: its header (2 bytes of protocol) follows the 6-byte
    // PPPoE header, and `ether[...]` counts from there (libpcap's PUSH_LINKHDR). A
    // variable part of the payload offset carries over to all three.
    this.offLinkhdr = { c: this.offLinkpl.c + this.offNl + 6, reg: this.offLinkpl.reg };
    this.offLinktype = { ...this.offLinkhdr };
    this.offLinkpl = { c: this.offLinkhdr.c + 2, reg: this.offLinkpl.reg };
    this.offNl = 0;
    this.offNlNosnap = 0;
    return b;
  }

  // 802.2 LLC: a length (not a type) in the type field, and not NetWare's raw 802.3.
  private llc(kind: string | undefined, pos: number): Cond {
    if (!this.ethernet()) throw filterError(`'llc' not supported for ${this.description()}`, pos);
    const b0 = and(not(this.ncmp('linktype', 0, H, 0xffffffff, JGT, false, ETHERMTU)), not(this.cmp('llc', 0, H, 0xffff)));
    if (kind === undefined) return b0;
    const k = kind.toLowerCase();
    if (k === 'i') return and(b0, not(leaf(this.load('llc', 2, B), JMP | JSET | SRC_K, 0x01)));
    if (k === 's') return and(b0, this.mcmp('llc', 2, B, 0x01, 0x03));
    if (k === 'u') return and(b0, this.mcmp('llc', 2, B, 0x03, 0x03));
    if (k in LLC_S_SUBTYPES) return and(b0, this.mcmp('llc', 2, B, LLC_S_SUBTYPES[k], 0x0f));
    if (k in LLC_U_SUBTYPES) return and(b0, this.mcmp('llc', 2, B, LLC_U_SUBTYPES[k], 0xef));
    throw filterError(`unknown LLC type name "${kind}"`, pos);
  }

  private broadcast(proto: Proto, pos: number): Cond {
    switch (proto) {
      case 'default': case 'link':
        if (!this.ethernet()) throw filterError('not a broadcast link', pos);
        return this.ehostop([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 'dst', pos);
      case 'ip': {
        const hostmask = ~this.netmask >>> 0;
        const b1 = this.mcmp('linkpl', 16, W, 0, hostmask);
        const b2 = this.mcmp('linkpl', 16, W, hostmask, hostmask);
        return and(this.linktype(ETHERTYPE.IP), or(b1, b2));
      }
      default:
        throw filterError('only link-layer/IP broadcast filters supported', pos);
    }
  }

  private multicast(proto: Proto, pos: number): Cond {
    switch (proto) {
      case 'default': case 'link':
        if (!this.ethernet()) throw filterError('link-layer multicast filters supported only on ethernet/FDDI/token ring/ARCNET/802.11/ATM LANE/Fibre Channel', pos);
        return leaf(this.load('linkhdr', 0, B), JMP | JSET | SRC_K, 1);
      case 'ip':
        return and(this.linktype(ETHERTYPE.IP), this.ncmp('linkpl', 16, B, 0xffffffff, JGE, false, 224));
      case 'ip6':
        return and(this.linktype(ETHERTYPE.IPV6), this.cmp('linkpl', 24, B, 255));
      default:
        throw filterError('link-layer multicast filters supported only on ethernet/FDDI/token ring/ARCNET/802.11/ATM LANE/Fibre Channel', pos);
    }
  }

  // Direction and interface: the Linux cooked headers hold them. Otherwise, for a live
  // capture, libpcap reads them from the kernel's ancillary data (SKF_AD_PKTTYPE,
  // SKF_AD_IFINDEX), which AF_PACKET sockets have (run over a capture file, such loads
  // fall outside the packet and reject it, as in libpcap's bpf_filter); for a capture
  // file it refuses them. libpcap measures the ancillary offsets from the link-layer
  // header, so after `pppoes` they land on other ancillary words; netpd does the same,
  // to give libpcap's program.
  private direction(outbound: boolean): Cond {
    let b: Cond;
    if (this.link === 'LINUX_SLL' && !this.isPppoes) b = this.cmp('linkhdr', 0, H, SLL_OUTGOING);
    else if (this.link === 'LINUX_SLL2' && !this.isPppoes) b = this.cmp('linkhdr', 10, B, SLL_OUTGOING);
    else if (this.savefile) throw filterError(`inbound/outbound not supported on ${this.description()} when reading savefiles`);
    else b = this.cmp('linkhdr', SKF_AD_OFF + SKF_AD_PKTTYPE, H, PACKET_OUTGOING);
    return outbound ? b : not(b);
  }

  private ifindex(index: number): Cond {
    if (this.link === 'LINUX_SLL2' && !this.isPppoes) return this.cmp('linkhdr', 4, W, index);
    if (this.savefile) throw filterError(`ifindex not supported on ${this.description()} when reading savefiles`);
    return this.cmp('linkhdr', SKF_AD_OFF + SKF_AD_IFINDEX, W, index);
  }

  private byteop(op: string, index: number, value: number): Cond {
    switch (op) {
      case '=': return this.cmp('linkhdr', index, B, value);
      case '<': return this.ncmp('linkhdr', index, B, 0xffffffff, JGE, true, value);
      case '>': return this.ncmp('linkhdr', index, B, 0xffffffff, JGT, false, value);
      // libpcap builds `byte N & V` / `byte N | V` without the load of byte N (a long-
      // standing quirk of gen_byteop); netpd reproduces it to agree on every packet.
      default: return not(leaf([stmt(ALU | (op === '|' ? OR : AND) | SRC_K, value)], JMP | JEQ | SRC_K, 0));
    }
  }

  // ---- MAC addresses -------------------------------------------------------------------

  private ehostop(mac: number[], dir: Qual['dir'], pos: number): Cond {
    switch (dir) {
      case 'src': return this.bcmp('linkhdr', 6, mac);
      case 'dst': return this.bcmp('linkhdr', 0, mac);
      case 'and': { const s = this.ehostop(mac, 'src', pos); return and(s, this.ehostop(mac, 'dst', pos)); }
      default: { const s = this.ehostop(mac, 'src', pos); return or(s, this.ehostop(mac, 'dst', pos)); }
    }
  }

  // ---- protocols -----------------------------------------------------------------------

  private protoAbbrev(proto: Proto, pos: number): Cond {
    switch (proto) {
      case 'sctp': return this.proto(IPPROTO.SCTP, 'default', pos);
      case 'tcp': return this.proto(IPPROTO.TCP, 'default', pos);
      case 'udp': return this.proto(IPPROTO.UDP, 'default', pos);
      case 'icmp': return this.proto(IPPROTO.ICMP, 'ip', pos);
      case 'igmp': return this.proto(IPPROTO.IGMP, 'ip', pos);
      case 'igrp': return this.proto(IPPROTO.IGRP, 'ip', pos);
      case 'pim': return this.proto(IPPROTO.PIM, 'default', pos);
      case 'vrrp': case 'carp': return this.proto(IPPROTO.VRRP, 'ip', pos);
      case 'ip': return this.linktype(ETHERTYPE.IP);
      case 'arp': return this.linktype(ETHERTYPE.ARP);
      case 'rarp': return this.linktype(ETHERTYPE.REVARP);
      case 'link': throw filterError('link layer applied in wrong context', pos);
      case 'atalk': return this.linktype(ETHERTYPE.ATALK);
      case 'aarp': return this.linktype(ETHERTYPE.AARP);
      case 'decnet': return this.linktype(ETHERTYPE.DN);
      case 'sca': return this.linktype(ETHERTYPE.SCA);
      case 'lat': return this.linktype(ETHERTYPE.LAT);
      case 'mopdl': return this.linktype(ETHERTYPE.MOPDL);
      case 'moprc': return this.linktype(ETHERTYPE.MOPRC);
      case 'ip6': return this.linktype(ETHERTYPE.IPV6);
      case 'icmp6': return this.proto(IPPROTO.ICMPV6, 'ip6', pos);
      case 'ah': return this.proto(IPPROTO.AH, 'default', pos);
      case 'esp': return this.proto(IPPROTO.ESP, 'default', pos);
      case 'iso': return this.linktype(LLCSAP.ISONS);
      case 'esis': return this.proto(ISO.ESIS, 'iso', pos);
      case 'isis': return this.proto(ISO.ISIS, 'iso', pos);
      case 'clnp': return this.proto(ISO.CLNP, 'iso', pos);
      case 'stp': return this.linktype(LLCSAP.STP);
      case 'ipx': return this.linktype(LLCSAP.IPX);
      case 'netbeui': return this.linktype(LLCSAP.NETBEUI);
      default: throw filterError(`'${proto}' is not supported as a protocol here`, pos);
    }
  }

  /** gen_proto: protocol number v carried by `proto` (ip, ip6, iso, link or either IP). */
  private proto(v: number, proto: Proto, pos: number): Cond {
    switch (proto) {
      case 'default': { const b0 = this.proto(v, 'ip', pos); return or(b0, this.proto(v, 'ip6', pos)); }
      case 'link': return this.linktype(v);
      case 'ip': return and(this.linktype(ETHERTYPE.IP), this.cmp('linkpl', 9, B, v));
      case 'ip6': {
        const b0 = this.linktype(ETHERTYPE.IPV6);
        const frag = and(this.cmp('linkpl', 6, B, IPPROTO.FRAGMENT), this.cmp('linkpl', 40, B, v));
        return and(b0, or(this.cmp('linkpl', 6, B, v), frag));
      }
      case 'iso':
        if (this.isPppoes) throw filterError('iso over PPPoE is not supported', pos);
        return and(this.linktype(LLCSAP.ISONS), this.cmp('linkpl_nosnap', 0, B, v));
      case 'arp': case 'rarp': throw filterError(`${proto} does not encapsulate another protocol`, pos);
      default: throw filterError(`'${proto} proto' is not supported`, pos);
    }
  }

  /** The IPv4 "not a later fragment" test (gen_ipfrag). */
  private ipfrag(): Cond {
    return not(leaf(this.load('linkpl', 6, H), JMP | JSET | SRC_K, 0x1fff));
  }

  // ---- hosts and networks ------------------------------------------------------------

  private hostop(addr: number, mask: number, dir: Qual['dir'], llProto: number, srcOff: number, dstOff: number): Cond {
    switch (dir) {
      case 'and': { const s = this.hostop(addr, mask, 'src', llProto, srcOff, dstOff); return and(s, this.hostop(addr, mask, 'dst', llProto, srcOff, dstOff)); }
      case 'default': case 'or': { const s = this.hostop(addr, mask, 'src', llProto, srcOff, dstOff); return or(s, this.hostop(addr, mask, 'dst', llProto, srcOff, dstOff)); }
    }
    const b0 = this.linktype(llProto);
    return and(b0, this.mcmp('linkpl', dir === 'src' ? srcOff : dstOff, W, addr, mask));
  }

  private host(addr: number, mask: number, proto: Proto, dir: Qual['dir'], what: string, pos: number): Cond {
    switch (proto) {
      case 'default': {
        const b0 = this.host(addr, mask, 'ip', dir, what, pos);
        if (this.labelStackDepth > 0) return b0;
        const b1 = or(b0, this.host(addr, mask, 'arp', dir, what, pos));
        return or(b1, this.host(addr, mask, 'rarp', dir, what, pos));
      }
      case 'ip': return this.hostop(addr, mask, dir, ETHERTYPE.IP, 12, 16);
      case 'arp': return this.hostop(addr, mask, dir, ETHERTYPE.ARP, 14, 24);
      case 'rarp': return this.hostop(addr, mask, dir, ETHERTYPE.REVARP, 14, 24);
      case 'link': throw filterError(`link-layer modifier applied to ${what}`, pos);
      default: throw filterError(`'${proto}' modifier applied to ${what}`, pos);
    }
  }

  private host6(addr: number[], mask: number[], proto: Proto, dir: Qual['dir'], what: string, pos: number): Cond {
    switch (proto) {
      case 'default': case 'ip6': return this.hostop6(addr, mask, dir, 8, 24);
      case 'link': throw filterError(`link-layer modifier applied to ip6 ${what}`, pos);
      default: throw filterError(`'${proto}' modifier applied to ip6 ${what}`, pos);
    }
  }

  private hostop6(addr: number[], mask: number[], dir: Qual['dir'], srcOff: number, dstOff: number): Cond {
    switch (dir) {
      case 'and': { const s = this.hostop6(addr, mask, 'src', srcOff, dstOff); return and(s, this.hostop6(addr, mask, 'dst', srcOff, dstOff)); }
      case 'default': case 'or': { const s = this.hostop6(addr, mask, 'src', srcOff, dstOff); return or(s, this.hostop6(addr, mask, 'dst', srcOff, dstOff)); }
    }
    const off = dir === 'src' ? srcOff : dstOff;
    // libpcap compares the last word first in the tree, so the first word is tested first.
    let b: Cond = this.mcmp('linkpl', off + 12, W, addr[3], mask[3]);
    b = and(this.mcmp('linkpl', off + 8, W, addr[2], mask[2]), b);
    b = and(this.mcmp('linkpl', off + 4, W, addr[1], mask[1]), b);
    b = and(this.mcmp('linkpl', off, W, addr[0], mask[0]), b);
    return and(this.linktype(ETHERTYPE.IPV6), b);
  }

  // ---- ports ---------------------------------------------------------------------------

  private portop(port: number, proto: number, dir: Qual['dir'], atom: (off: number) => Cond): Cond {
    const b0 = and(this.cmp('linkpl', 9, B, proto), this.ipfrag());
    return and(b0, this.dirPair(dir, atom));
  }

  private dirPair(dir: Qual['dir'], atom: (off: number) => Cond): Cond {
    switch (dir) {
      case 'src': return atom(0);
      case 'dst': return atom(2);
      case 'and': { const s = atom(0); return and(s, atom(2)); }
      case 'default': case 'or': { const s = atom(0); return or(s, atom(2)); }
    }
  }

  private portGeneric(ipProto: number | null, dir: Qual['dir'], v6: boolean, atom: (off: number) => Cond): Cond {
    const one = (p: number) => v6
      ? and(this.cmp('linkpl', 6, B, p), this.dirPair(dir, atom))
      : this.portop(0, p, dir, atom);
    const b0 = this.linktype(v6 ? ETHERTYPE.IPV6 : ETHERTYPE.IP);
    let b1: Cond;
    if (ipProto !== null) b1 = one(ipProto);
    else {
      const tcp = one(IPPROTO.TCP);
      b1 = or(tcp, one(IPPROTO.UDP));
      b1 = or(one(IPPROTO.SCTP), b1);
    }
    return and(b0, b1);
  }

  private ports(lo: number, hi: number, ipProto: number | null, dir: Qual['dir'], range: boolean): Cond {
    const atom4 = (off: number) => range ? this.rangeAtom('tran4', off, lo, hi) : this.cmp('tran4', off, H, lo);
    const atom6 = (off: number) => range ? this.rangeAtom('tran6', off, lo, hi) : this.cmp('tran6', off, H, lo);
    // Order matters for packets cut short: libpcap tests IPv6 first, then IPv4.
    const b6 = this.portGeneric(ipProto, dir, true, atom6);
    const b4 = this.portGeneric(ipProto, dir, false, atom4);
    return or(b6, b4);
  }

  private rangeAtom(rel: Rel, off: number, lo: number, hi: number): Cond {
    const ge = this.ncmp(rel, off, H, 0xffffffff, JGE, false, lo);
    return and(ge, this.ncmp(rel, off, H, 0xffffffff, JGT, true, hi));
  }

  // ---- ids: host/net/port/proto with their qualifiers ----------------------------------

  private genId(q: Qual, v: IdValue, pos: number): Cond {
    if (q.undef) throw filterError(`syntax error: a value with no qualifier to take, at column ${pos + 1}`, pos);
    switch (v.kind) {
      case 'num': return this.ncode(null, v.value, q, pos);
      case 'ipv4':
        if (v.prefix !== undefined || v.mask !== undefined) return this.mcode(v.text, v.mask, v.prefix, q, pos);
        return this.ncode(v.text, 0, q, pos);
      case 'ipv6': return this.mcode6(v.text, v.prefix ?? 128, q, pos);
      case 'mac': {
        if ((q.addr === 'host' || q.addr === 'default') && q.proto === 'link') {
          if (!this.ethernet()) throw filterError('ethernet addresses supported only on ethernet/FDDI/token ring/802.11/ATM LANE/Fibre Channel', pos);
          return this.ehostop(parseMac(v.text), q.dir, pos);
        }
        throw filterError(`ethernet address used in non-ether expression ("${v.text}")`, pos);
      }
      case 'name': return this.scode(v.text, q, pos);
    }
  }

  private ncode(text: string | null, num: number, q: Qual, pos: number): Cond {
    let v = num >>> 0;
    let vlen = 32;
    if (text !== null) {
      const parsed = parseIpv4(text);
      if (!parsed) throw filterError(`invalid IPv4 address '${text}'`, pos);
      v = parsed.value;
      vlen = parsed.bits;
    }
    const proto = q.proto;
    switch (q.addr) {
      case 'default': case 'host': case 'net': {
        if (proto === 'link') throw filterError('illegal link layer address', pos);
        let mask = 0xffffffff;
        if (text === null && q.addr === 'net') {
          while (v !== 0 && (v & 0xff000000) === 0) {
            v = (v << 8) >>> 0;
            mask = (mask << 8) >>> 0;
          }
        } else {
          v = vlen === 0 ? 0 : (v << (32 - vlen)) >>> 0;
          mask = vlen === 0 ? 0 : (mask << (32 - vlen)) >>> 0;
        }
        return this.host(v, mask, proto, q.dir, q.addr === 'net' ? 'net' : 'host', pos);
      }
      case 'port':
        if (!['default', 'udp', 'tcp', 'sctp'].includes(proto)) throw filterError("illegal qualifier of 'port'", pos);
        if (v > 65535) throw filterError(`illegal port number ${v} > 65535`, pos);
        return this.ports(v, v, transport(proto), q.dir, false);
      case 'portrange':
        if (!['default', 'udp', 'tcp', 'sctp'].includes(proto)) throw filterError("illegal qualifier of 'portrange'", pos);
        if (v > 65535) throw filterError(`illegal port number ${v} > 65535`, pos);
        return this.ports(v, v, transport(proto), q.dir, true);
      case 'gateway': throw filterError("'gateway' requires a name", pos);
      case 'proto':
        if (q.dir !== 'default') throw filterError("direction applied to 'proto'", pos);
        // libpcap 1.10 compiles these into tests that can never match; later libpcap
        // refuses them, and so does netpd.
        if (proto === 'link' && v > 0xffff) throw filterError(`ether proto ${v} > 65535`, pos);
        if (proto !== 'link' && v > 0xff) throw filterError(`${proto === 'default' ? '' : `${proto} `}proto ${v} > 255`, pos);
        return this.proto(v, proto, pos);
      case 'protochain':
        throw filterError('protochain needs a loop (a backward jump), which the Linux classic BPF rules netpd enforces do not allow', pos);
    }
  }

  private mcode(text: string, maskText: string | undefined, prefix: number | undefined, q: Qual, pos: number): Cond {
    const a = parseIpv4(text);
    if (!a) throw filterError(`invalid IPv4 address '${text}'`, pos);
    const n = a.bits === 0 ? 0 : (a.value << (32 - a.bits)) >>> 0;
    let m: number;
    if (maskText !== undefined) {
      const mm = parseIpv4(maskText);
      if (!mm) throw filterError(`invalid IPv4 address '${maskText}'`, pos);
      m = mm.bits === 0 ? 0 : (mm.value << (32 - mm.bits)) >>> 0;
      if ((n & ~m) >>> 0 !== 0) throw filterError(`non-network bits set in "${text} mask ${maskText}"`, pos);
    } else {
      if (prefix! > 32) throw filterError('mask length must be <= 32', pos);
      m = prefix === 0 ? 0 : (0xffffffff << (32 - prefix!)) >>> 0;
      if ((n & ~m) >>> 0 !== 0) throw filterError(`non-network bits set in "${text}/${prefix}"`, pos);
    }
    if (q.addr !== 'net') throw filterError('Mask syntax for networks only', pos);
    return this.host(n, m, q.proto, q.dir, 'net', pos);
  }

  private mcode6(text: string, prefix: number, q: Qual, pos: number): Cond {
    const addr = parseIpv6(text);
    if (!addr) throw filterError(`invalid IPv6 address '${text}'`, pos);
    if (prefix > 128) throw filterError('mask length must be <= 128', pos);
    const mask = [0, 0, 0, 0].map((_, i) => {
      const bits = Math.max(0, Math.min(32, prefix - 32 * i));
      return bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    });
    if (addr.some((w, i) => (w & ~mask[i]) >>> 0 !== 0)) throw filterError(`non-network bits set in "${text}/${prefix}"`, pos);
    switch (q.addr) {
      case 'default': case 'host':
        if (prefix !== 128) throw filterError('Mask syntax for networks only', pos);
        return this.host6(addr, mask, q.proto, q.dir, 'host', pos);
      case 'net':
        return this.host6(addr, mask, q.proto, q.dir, 'net', pos);
      default:
        throw filterError('invalid qualifier against IPv6 address', pos);
    }
  }

  private scode(name: string, q: Qual, pos: number): Cond {
    switch (q.addr) {
      case 'proto': {
        if (q.dir !== 'default') throw filterError("direction applied to 'proto'", pos);
        const v = q.proto === 'link' ? ETHER_PROTOCOLS[name.toLowerCase()] : protocolNumber(name) ?? undefined;
        if (v === undefined) throw filterError(`unknown ${q.proto === 'link' ? 'ether' : 'ip'} proto '${name}'`, pos);
        return this.proto(v, q.proto, pos);
      }
      case 'portrange': {
        if (!['default', 'udp', 'tcp', 'sctp'].includes(q.proto)) throw filterError("illegal qualifier of 'portrange'", pos);
        // pcap_nametoportrange: "%d-%d" as sscanf reads it, else NAME-NAME.
        const m = /^(\d+)-(\d+)/.exec(name);
        let lo: number, hi: number;
        let ipProto = transport(q.proto);
        if (m) {
          lo = Number(m[1]);
          hi = Number(m[2]);
        } else {
          const dash = name.indexOf('-');
          const a = dash > 0 ? this.servicePort(name.slice(0, dash), q, pos) : null;
          const b = dash > 0 ? this.servicePort(name.slice(dash + 1), q, pos) : null;
          if (!a || !b) throw filterError(`unknown port in range '${name}'`, pos);
          if (a.proto !== b.proto) throw filterError(`inconsistent protocols in port range '${name}'`, pos);
          lo = a.port;
          hi = b.port;
          ipProto = a.proto;
        }
        if (lo > 65535 || hi > 65535) throw filterError(`illegal port number in range '${name}' > 65535`, pos);
        if (lo > hi) [lo, hi] = [hi, lo];
        return this.ports(lo, hi, ipProto, q.dir, true);
      }
      case 'port': {
        if (!['default', 'udp', 'tcp', 'sctp'].includes(q.proto)) throw filterError("illegal qualifier of 'port'", pos);
        const s = this.servicePort(name, q, pos);
        if (!s) throw filterError(`unknown port '${name}'`, pos);
        return this.ports(s.port, s.port, s.proto, q.dir, false);
      }
      default:
        throw filterError(`unknown host '${name}': netpd resolves no host names; give an address`, pos);
    }
  }

  // A service name under the port's protocol qualifier, as gen_scode checks it.
  private servicePort(name: string, q: Qual, pos: number): { port: number; proto: number | null } | null {
    const s = serviceToPort(name);
    if (!s) return null;
    const want = transport(q.proto);
    if (want === null) return s;
    if (s.proto !== null && s.proto !== want) throw filterError(`port '${name}' is ${s.proto === IPPROTO.TCP ? 'tcp' : 'udp'}`, pos);
    return { port: s.port, proto: want };
  }

  // ---- arithmetic (gen_loadi, gen_load, gen_arth, gen_neg, gen_relation) --------------

  private allocReg(): number {
    for (let n = 0; n < 16; n++) {
      if (this.regUsed[this.curReg]) this.curReg = (this.curReg + 1) % 16;
      else {
        this.regUsed[this.curReg] = true;
        return this.curReg;
      }
    }
    throw filterError('too many registers needed to evaluate expression');
  }
  private freeReg(n: number): void { this.regUsed[n] = false; }

  /** The value of an arithmetic tree, operands in the order written (registers are allocated in libpcap's order). */
  private arith(root: Arith): Value {
    const operands = (a: Arith): Arith[] => (a.t === 'binop' ? [a.l, a.r] : a.t === 'neg' ? [a.e] : a.t === 'load' ? [a.index] : []);
    return foldTree<Arith, Value>(root, operands, (a, [v0, v1]) => {
      switch (a.t) {
        case 'num': {
          const reg = this.allocReg();
          return { stmts: [stmt(LD | IMM, a.value), stmt(ST, reg)], reg, check: null };
        }
        case 'len': {
          const reg = this.allocReg();
          return { stmts: [stmt(LD | W | LEN), stmt(ST, reg)], reg, check: null };
        }
        case 'neg':
          v0.stmts.push(stmt(LD | MEM, v0.reg), stmt(ALU | NEG), stmt(ST, v0.reg));
          return v0;
        case 'binop': return this.binop(a.op, v0, v1);
        case 'load': return this.loadAt(a, v0);
      }
    });
  }

  private binop(op: (Arith & { t: 'binop' })['op'], a0: Value, a1: Value): Value {
    const codes = { '+': ADD, '-': SUB, '*': MUL, '/': DIV, '%': MOD, '&': AND, '|': OR, '^': XOR, '<<': LSH, '>>': RSH };
    const code = codes[op];
    // libpcap looks only at the first statement of the right operand's code: an
    // operand that starts by loading the constant 0 (as `ip[0]` does, for its index)
    // counts as zero. netpd refuses the same expressions.
    const imm = a1.stmts[0].code === (LD | IMM) ? a1.stmts[0].k : null;
    if (imm === 0 && code === DIV) throw filterError('division by zero');
    if (imm === 0 && code === MOD) throw filterError('modulus by zero');
    if (imm !== null && imm > 31 && (code === LSH || code === RSH)) throw filterError('shift by more than 31 bits');
    const stmts = append(a0.stmts, a1.stmts);
    stmts.push(stmt(LDX | MEM, a1.reg), stmt(LD | MEM, a0.reg), stmt(ALU | SRC_X | code));
    this.freeReg(a0.reg);
    this.freeReg(a1.reg);
    const reg = this.allocReg();
    stmts.push(stmt(ST, reg));
    // libpcap's gen_arth keeps only the left operand's protocol check.
    return { stmts, reg, check: a0.check };
  }

  /** A load at the index `inst` computed (gen_load). */
  private loadAt(a: Arith & { t: 'load' }, inst: Value): Value {
    const size = a.size === 1 ? B : a.size === 2 ? H : a.size === 4 ? W : -1;
    if (size < 0) throw filterError('data size must be 1, 2, or 4', a.pos);
    const reg = this.allocReg();
    this.freeReg(inst.reg);
    const stmts = inst.stmts;
    let check = inst.check;
    switch (a.proto) {
      case 'link':
        append(stmts, this.indexX(this.offLinkhdr, inst.reg)).push(stmt(LD | IND | size, this.offLinkhdr.c));
        break;
      case 'ip': case 'arp': case 'rarp': case 'atalk': case 'decnet': case 'sca': case 'lat': case 'moprc': case 'mopdl': case 'ip6': {
        append(stmts, this.indexX(this.offLinkpl, inst.reg)).push(stmt(LD | IND | size, this.offLinkpl.c + this.offNl));
        const b = this.protoAbbrev(a.proto, a.pos);
        check = check ? and(check, b) : b;
        break;
      }
      case 'sctp': case 'tcp': case 'udp': case 'icmp': case 'igmp': case 'igrp': case 'pim': case 'vrrp': case 'carp': {
        append(stmts, this.loadxIpHdrLen()).push(stmt(LD | MEM, inst.reg), stmt(ALU | ADD | SRC_X), stmt(TAX), stmt(LD | IND | size, this.offLinkpl.c + this.offNl));
        let b = and(this.protoAbbrev(a.proto, a.pos), this.ipfrag());
        if (check) b = and(check, b);
        check = and(this.protoAbbrev('ip', a.pos), b);
        break;
      }
      case 'icmp6': {
        let b = this.protoAbbrev('ip6', a.pos);
        if (check) b = and(check, b);
        check = and(b, this.cmp('linkpl', 6, B, IPPROTO.ICMPV6));
        append(stmts, this.indexX(this.offLinkpl, inst.reg)).push(stmt(LD | IND | size, this.offLinkpl.c + this.offNl + 40));
        break;
      }
      default:
        throw filterError(`unsupported index operation on ${a.proto}`, a.pos);
    }
    stmts.push(stmt(ST, reg));
    return { stmts, reg, check };
  }

  private relation(code: 'jgt' | 'jge' | 'jeq', l: Arith, r: Arith, reversed: boolean): Cond {
    const a0 = this.arith(l);
    const a1 = this.arith(r);
    const stmts = append(a0.stmts, a1.stmts);
    stmts.push(stmt(LDX | MEM, a1.reg), stmt(LD | MEM, a0.reg));
    let b: Cond;
    if (code === 'jeq') {
      stmts.push(stmt(ALU | SUB | SRC_X));
      b = leaf(stmts, JMP | JEQ | SRC_K, 0);
    } else {
      b = leaf(stmts, JMP | (code === 'jgt' ? JGT : JGE) | SRC_X, 0);
    }
    if (reversed) b = not(b);
    this.freeReg(a0.reg);
    this.freeReg(a1.reg);
    const check = a0.check ? (a1.check ? and(a0.check, a1.check) : a0.check) : a1.check;
    return check ? and(check, b) : b;
  }
}

// ---- address parsing ---------------------------------------------------------------

/** __pcap_atoin: 1 to 4 dotted decimal parts; value and the number of bits given. */
export function parseIpv4(text: string): { value: number; bits: number } | null {
  const parts = text.split('.');
  if (parts.length > 4) return null;
  let value = 0;
  for (const p of parts) {
    if (!/^\d+$/.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    value = ((value << 8) | n) >>> 0;
  }
  return { value, bits: parts.length * 8 };
}

/** An IPv6 address as four 32-bit words, or null. */
export function parseIpv6(text: string): number[] | null {
  let head = text;
  let v4: number[] = [];
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const p = parseIpv4(tail);
    if (!p || p.bits !== 32) return null;
    v4 = [p.value >>> 16, p.value & 0xffff];
    head = text.slice(0, lastColon + 1) + (text.slice(lastColon - 1, lastColon + 1) === '::' ? '' : '0');
    if (!head.endsWith('::')) head = text.slice(0, lastColon);
  }
  const halves = head.split('::');
  if (halves.length > 2) return null;
  const parse = (s: string) => (s === '' ? [] : s.split(':').map((g) => (/^[0-9A-Fa-f]{1,4}$/.test(g) ? parseInt(g, 16) : NaN)));
  const left = parse(halves[0]);
  const right = halves.length === 2 ? parse(halves[1]) : [];
  const groups = halves.length === 2
    ? [...left, ...new Array(8 - v4.length - left.length - right.length).fill(0), ...right, ...v4]
    : [...left, ...v4];
  if (groups.length !== 8 || groups.some((g) => !(g >= 0))) return null;
  return [0, 1, 2, 3].map((i) => ((groups[2 * i] << 16) | groups[2 * i + 1]) >>> 0);
}

/** pcap_ether_aton: six bytes from any of the usual spellings. */
export function parseMac(text: string): number[] {
  const hex = text.replace(/[-:.]/g, '');
  if (/[-:.]/.test(text) && !/^[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}$/.test(text)) {
    return text.split(/[-:.]/).map((b) => parseInt(b, 16));
  }
  return [0, 2, 4, 6, 8, 10].map((i) => parseInt(hex.slice(i, i + 2), 16));
}

function transport(proto: Proto): number | null {
  return proto === 'tcp' ? IPPROTO.TCP : proto === 'udp' ? IPPROTO.UDP : proto === 'sctp' ? IPPROTO.SCTP : null;
}

function ethertypeToPpp(llProto: number): number {
  switch (llProto) {
    case ETHERTYPE.IP: return 0x0021;
    case ETHERTYPE.IPV6: return 0x0057;
    case ETHERTYPE.DN: return 0x0027;
    case ETHERTYPE.ATALK: return 0x0029;
    case 0x8137: return 0x002b; // IPX
    case LLCSAP.ISONS: return 0x0023;
    case 0x6003: return 0x0027;
    case LLCSAP.IPX: return 0x002b;
    case 0x0600: return 0x002b;
    default: return llProto;
  }
}
