// compileFilter: pcap-filter expression → validated classic BPF program, or (target
// 'dpf') the DPF descriptions of that program (bindings/dpf/compile.ts).
// Parsing (parser.ts), code generation mirroring libpcap (gencode.ts), layout
// (emit.ts), then, unless optimize is false, the optimizer (optimize.ts), told which
// jumps lie inside a block and that it knows nothing of A and X on entry, as
// libpcap's optimizer knows nothing of them: its program is then tcpdump's.

import { NetpdError } from '../errors.js';
import { validateProgram, type BpfInstruction } from '../bpf.js';
import { parseFilter } from './parser.js';
import { CodeGen, type LinkLayer } from './gencode.js';
import { emitProgram } from './emit.js';
import { optimizeProgram, rejectsAll } from './optimize.js';
import { compileDpf, toDescription } from '../dpf/compile.js';
import type { DpfDescription } from '../dpf/description.js';

export interface CompileOptions {
  /**
   * Link type of the packets, as a LINKTYPE_ number or libpcap's name (default EN10MB):
   * EN10MB (1), LINUX_SLL (113), LINUX_SLL2 (276), RAW (101, and 12 and 14, the DLT_RAW
   * values of Linux and OpenBSD), IPV4 (228), IPV6 (229), NULL (0), LOOP (108). The
   * others are ENOTSUP.
   */
  linkType?: number | string;
  /**
   * Byte order of the capture file, 'le' or 'be' as PcapReader.byteOrder says. Only NULL
   * cares: its address family is in the writing machine's byte order. Default 'le'.
   */
  byteOrder?: 'le' | 'be';
  /**
   * The packets come from a capture file: the program is the one libpcap makes for
   * `tcpdump -r FILE` (`inbound`, `outbound`, `ifindex` are EFILTER where the link-layer
   * header does not hold them; NULL/LOOP's `ip6` takes every BSD's AF_INET6). Default
   * false: libpcap's program for a live capture, as `tcpdump -y TYPE -d` prints it.
   */
  savefile?: boolean;
  /** The value an accepting program returns. Default 262144, as tcpdump. */
  snaplen?: number;
  /** Run the optimizer (tcpdump's default); false gives libpcap's unoptimized code (tcpdump -O). */
  optimize?: boolean;
  /** Netmask for `ip broadcast`. Default 0, what tcpdump uses when it knows none. */
  netmask?: number;
  /**
   * The frames are seen by a live Linux socket filter (SO_ATTACH_FILTER), where the
   * kernel has taken the outer VLAN tag off into metadata: generates libpcap's
   * live-Linux code, which tests `vlan` through the ancillary loads [vlanp] and
   * [vlan_tci] and then finds the headers at offsets known only at run time (what
   * `tcpdump -d -i IFACE` prints on Linux). Default false: the frames hold their tags,
   * as in capture files (what `tcpdump -d -r FILE` prints). Run over a capture file,
   * which has no metadata, such a program rejects every frame that reaches a `vlan`.
   */
  vlanMetadata?: boolean;
  /**
   * 'bpf' (default): a classic BPF program. 'dpf': the DPF descriptions whose union
   * accepts exactly what the (optimized, unless optimize is false) program accepts, or
   * EFILTER naming the construct DPF cannot express.
   */
  target?: 'bpf' | 'dpf';
}

export function compileFilter(expression: string, options?: CompileOptions & { target?: 'bpf' }): BpfInstruction[];
export function compileFilter(expression: string, options: CompileOptions & { target: 'dpf' }): DpfDescription[];
export function compileFilter(expression: string, options: CompileOptions = {}): BpfInstruction[] | DpfDescription[] {
  if (options.target === 'dpf') {
    if (options.vlanMetadata) throw new NetpdError('EINVAL', 'vlanMetadata is for kernel socket filters; DPF descriptions run on frames that hold their tags');
    return compileDpf(expression, { linkType: options.linkType, netmask: options.netmask, optimize: options.optimize ?? true }).map(toDescription);
  }
  if (options.target !== undefined && options.target !== 'bpf') throw new NetpdError('EINVAL', `target must be "bpf" or "dpf", got "${String(options.target)}"`);
  return compileBpf(expression, options);
}

/** compileFilter for the 'bpf' target. */
export function compileBpf(expression: string, options: CompileOptions = {}): BpfInstruction[] {
  if (typeof expression !== 'string') throw new NetpdError('EFILTER', 'a filter expression must be a string');
  const linkType = linkLayer(options.linkType ?? 1);
  const snaplen = options.snaplen ?? 262144;
  const tree = parseFilter(expression);
  const gen = new CodeGen({ netmask: options.netmask ?? 0, vlanMetadata: options.vlanMetadata === true, linkType, byteOrder: options.byteOrder, savefile: options.savefile === true });
  const cond = tree === null ? null : gen.gen(tree);
  const emitted = emitProgram(cond, snaplen);
  let program = emitted.program;
  if (options.optimize !== false) {
    program = optimizeProgram(program, { localJumps: emitted.localJumps, unknownOnEntry: true });
    // As libpcap: an optimized filter that can accept nothing is an error.
    if (rejectsAll(program)) throw new NetpdError('EFILTER', `expression rejects all packets: "${expression}"`, { details: { reason: 'rejects-all' } });
  }
  try {
    validateProgram(program);
  } catch (e) {
    // libpcap's live code for `vlan ... pppoes` reads a scratch word it never stored
    // (its initial stores go to the register `pppoes` took over): the kernel refuses
    // the program, and so does netpd, saying why.
    if (!(e instanceof NetpdError) || e.code !== 'EBADPROG') throw e;
    throw new NetpdError('EFILTER', `expression "${expression}" compiles, as in libpcap, to a program the kernel refuses: ${e.message}`, { cause: e });
  }
  return program;
}

// ---- link types ---------------------------------------------------------------------

/**
 * LINKTYPE_ values (https://www.tcpdump.org/linktypes.html) by libpcap's names (what
 * `tcpdump -y` and pcap_datalink_val_to_name say), for the common link types: the ones
 * netpd compiles for, and others so that ENOTSUP can name them.
 */
const LINKTYPE_NAMES: ReadonlyMap<number, string> = new Map([
  [0, 'NULL'], [1, 'EN10MB'], [3, 'AX25'], [6, 'IEEE802'], [7, 'ARCNET'], [8, 'SLIP'], [9, 'PPP'], [10, 'FDDI'],
  [50, 'PPP_SERIAL'], [51, 'PPP_ETHER'], [100, 'ATM_RFC1483'], [101, 'RAW'], [104, 'C_HDLC'], [105, 'IEEE802_11'],
  [107, 'FRELAY'], [108, 'LOOP'], [113, 'LINUX_SLL'], [114, 'LTALK'], [117, 'PFLOG'], [119, 'PRISM_HEADER'],
  [122, 'IP_OVER_FC'], [123, 'SUNATM'], [127, 'IEEE802_11_RADIO'], [129, 'ARCNET_LINUX'], [140, 'MTP2'],
  [143, 'DOCSIS'], [144, 'LINUX_IRDA'], [163, 'IEEE802_11_RADIO_AVS'], [177, 'LINUX_LAPD'], [187, 'BLUETOOTH_HCI_H4'],
  [189, 'USB_LINUX'], [192, 'PPI'], [197, 'ERF'], [220, 'USB_LINUX_MMAPPED'], [227, 'CAN_SOCKETCAN'], [228, 'IPV4'],
  [229, 'IPV6'], [239, 'NFLOG'], [240, 'NETANALYZER'], [249, 'USBPCAP'], [252, 'WIRESHARK_UPPER_PDU'], [276, 'LINUX_SLL2'],
]);
const LINKTYPE_VALUES: ReadonlyMap<string, number> = new Map([...LINKTYPE_NAMES].map(([v, n]) => [n, v]));

/** The link types the compiler knows, by LINKTYPE_ value. 12 and 14 are DLT_RAW's values on Linux and OpenBSD. */
const COMPILED: ReadonlyMap<number, LinkLayer> = new Map([
  [1, 'EN10MB'], [113, 'LINUX_SLL'], [276, 'LINUX_SLL2'], [101, 'RAW'], [12, 'RAW'], [14, 'RAW'],
  [228, 'IPV4'], [229, 'IPV6'], [0, 'NULL'], [108, 'LOOP'],
]);

/** A LINKTYPE_ value from its libpcap name (any case, `DLT_`/`LINKTYPE_` prefix allowed) or number; EINVAL if unknown. */
export function linkTypeValue(nameOrNumber: string | number): number {
  if (typeof nameOrNumber === 'number') {
    if (Number.isInteger(nameOrNumber) && nameOrNumber >= 0 && nameOrNumber <= 0xffff) return nameOrNumber;
    throw new NetpdError('EINVAL', `link type ${nameOrNumber} is not a LINKTYPE_ value (an integer 0..65535)`);
  }
  if (typeof nameOrNumber !== 'string') throw new NetpdError('EINVAL', 'a link type must be a number or a name');
  if (/^\d+$/.test(nameOrNumber)) return linkTypeValue(Number(nameOrNumber));
  const name = nameOrNumber.toUpperCase().replace(/^(DLT|LINKTYPE)_/, '');
  const v = LINKTYPE_VALUES.get(name);
  if (v === undefined) throw new NetpdError('EINVAL', `unknown link type "${nameOrNumber}" (known: ${[...LINKTYPE_VALUES.keys()].join(', ')})`);
  return v;
}

/** libpcap's name for a LINKTYPE_ value (RAW for 12 and 14 too), or `LINKTYPE_<n>` for one not listed here. */
export function linkTypeName(value: number): string {
  return LINKTYPE_NAMES.get(value) ?? (value === 12 || value === 14 ? 'RAW' : `LINKTYPE_${value}`);
}

/** The code generator's link layer for a link type, or ENOTSUP naming it. */
function linkLayer(linkType: string | number): LinkLayer {
  const value = linkTypeValue(linkType);
  const layer = COMPILED.get(value);
  if (layer === undefined) {
    throw new NetpdError('ENOTSUP', `link type ${linkTypeName(value)} (${value}) is not supported by the filter compiler ` +
      `(supported: ${[...new Set(COMPILED.values())].join(', ')})`, { details: { linkType: value } });
  }
  return layer;
}
