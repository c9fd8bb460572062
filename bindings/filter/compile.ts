// compileFilter: pcap-filter expression → validated classic BPF program.
// Parsing (parser.ts), code generation mirroring libpcap (gencode.ts), layout
// (emit.ts), then, unless optimize is false, the optimizer (optimize.ts).

import { NetpdError } from '../errors.js';
import { validateProgram, type BpfInstruction } from '../bpf.js';
import { parseFilter } from './parser.js';
import { CodeGen } from './gencode.js';
import { emitProgram } from './emit.js';
import { optimizeProgram, rejectsAll } from './optimize.js';

export interface CompileOptions {
  /** Link type of the packets: 'EN10MB' (Ethernet) or 1. */
  linkType?: 'EN10MB' | number;
  /** The value an accepting program returns. Default 262144, as tcpdump. */
  snaplen?: number;
  /** Run the optimizer (tcpdump's default); false gives libpcap's unoptimized code (tcpdump -O). */
  optimize?: boolean;
  /** Netmask for `ip broadcast`. Default 0, what tcpdump uses when it knows none. */
  netmask?: number;
}

export function compileFilter(expression: string, options: CompileOptions = {}): BpfInstruction[] {
  if (typeof expression !== 'string') throw new NetpdError('EFILTER', 'a filter expression must be a string');
  const linkType = options.linkType ?? 'EN10MB';
  if (linkType !== 'EN10MB' && linkType !== 1) {
    throw new NetpdError('ENOTSUP', `link type ${String(linkType)} is not supported by the filter compiler yet (only EN10MB)`);
  }
  const snaplen = options.snaplen ?? 262144;
  const tree = parseFilter(expression);
  const cond = tree === null ? null : new CodeGen({ netmask: options.netmask ?? 0 }).gen(tree);
  let program = emitProgram(cond, snaplen);
  if (options.optimize !== false) {
    program = optimizeProgram(program);
    // As libpcap: an optimized filter that can accept nothing is an error.
    if (rejectsAll(program)) throw new NetpdError('EFILTER', `expression rejects all packets: "${expression}"`);
  }
  validateProgram(program);
  return program;
}
