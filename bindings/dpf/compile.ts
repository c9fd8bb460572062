// pcap-filter expressions → DPF descriptions: the expression's classic BPF program, as
// compileFilter makes it, turned by from-bpf.ts into the disjunction of descriptions
// that accepts the same packets. An expression with no DPF form is an EFILTER that quotes
// the expression and names the construct, so a caller can fall back to the BPF filter
// type.
//
// The program read is libpcap's unoptimized one (`tcpdump -O`) unless asked otherwise:
// its shapes are regular, so refusals point at what the user wrote (`ip[2:2] - 20 = 40`
// is arithmetic on a loaded value, not a mystery). The optimized program (tcpdump's
// default, and compileFilter's) folds constant arithmetic and drops reloads, so over the
// test corpora it has a DPF form a little more often (728 expressions against 715) and in
// fewer descriptions; the two programs, and so their descriptions, differ only on packets
// cut short. Pass optimize: true where the descriptions must accept what the default BPF
// program accepts.

import { NetpdError } from '../errors.js';
import { compileBpf, type CompileOptions } from '../filter/compile.js';
import type { CanonicalAtom, DpfAtom, DpfDescription } from './description.js';
import { bpfToDpf } from './from-bpf.js';

/** compileFilter's options that mean something for DPF (it has no snap length). Default optimize: false. */
export type DpfCompileOptions = Pick<CompileOptions, 'linkType' | 'netmask' | 'optimize'>;

/**
 * The canonical DPF descriptions whose disjunction accepts exactly what the expression's
 * program accepts, truncated packets included. Throws EFILTER when the expression does
 * not compile, or has no DPF form; the message quotes the expression and says which
 * construct is at fault (details.instruction: where in the program).
 */
export function compileDpf(expression: string, options: DpfCompileOptions = {}): CanonicalAtom[][] {
  const program = compileBpf(expression, { ...options, optimize: options.optimize ?? false });
  try {
    return bpfToDpf(program);
  } catch (e) {
    if (!(e instanceof NetpdError) || e.code !== 'EFILTER') throw e;
    const reason = e.message.slice(`${e.code}: `.length);
    throw new NetpdError('EFILTER', `"${expression}" has no DPF form: ${reason}`, { details: e.details, cause: e });
  }
}

/** A canonical description written back in the public form (every field explicit). */
export function toDescription(atoms: readonly CanonicalAtom[]): DpfDescription {
  return atoms.map((a): DpfAtom => {
    if (a.kind === 'compare') return { offset: a.offset, size: a.size, mask: a.mask, value: a.value };
    if (a.size === 0) return { shift: { add: a.add } };
    return { shift: { offset: a.offset, size: a.size, mask: a.mask, scale: a.scale, add: a.add } };
  });
}
