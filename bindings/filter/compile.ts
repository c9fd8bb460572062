// compileFilter: pcap-filter expression → validated classic BPF program, or (target
// 'dpf') the DPF descriptions of that program (bindings/dpf/compile.ts).
// Parsing (parser.ts), code generation mirroring libpcap (gencode.ts), layout
// (emit.ts), then, unless optimize is false, the optimizer (optimize.ts), told which
// jumps lie inside a block and that it knows nothing of A and X on entry, as
// libpcap's optimizer knows nothing of them: its program is then tcpdump's.

import { NetpdError } from '../errors.js';
import { validateProgram, type BpfInstruction } from '../bpf.js';
import { parseFilter } from './parser.js';
import { CodeGen } from './gencode.js';
import { emitProgram } from './emit.js';
import { optimizeProgram, rejectsAll } from './optimize.js';
import { compileDpf, toDescription } from '../dpf/compile.js';
import type { DpfDescription } from '../dpf/description.js';

export interface CompileOptions {
  /** Link type of the packets: 'EN10MB' (Ethernet) or 1. */
  linkType?: 'EN10MB' | number;
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
  const linkType = options.linkType ?? 'EN10MB';
  if (linkType !== 'EN10MB' && linkType !== 1) {
    throw new NetpdError('ENOTSUP', `link type ${String(linkType)} is not supported by the filter compiler yet (only EN10MB)`);
  }
  const snaplen = options.snaplen ?? 262144;
  const tree = parseFilter(expression);
  const gen = new CodeGen({ netmask: options.netmask ?? 0, vlanMetadata: options.vlanMetadata === true });
  const cond = tree === null ? null : gen.gen(tree);
  const emitted = emitProgram(cond, snaplen);
  let program = emitted.program;
  if (options.optimize !== false) {
    program = optimizeProgram(program, { localJumps: emitted.localJumps, unknownOnEntry: true });
    // As libpcap: an optimized filter that can accept nothing is an error.
    if (rejectsAll(program)) throw new NetpdError('EFILTER', `expression rejects all packets: "${expression}"`);
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
