// From a condition tree to a classic BPF program, the way libpcap does it.
//
// wire() gives every leaf block its true and false successors: `a and b` sends a's
// true edge to b and its false edge to the false target; `or` mirrors that; `not`
// swaps the targets. This is libpcap's backpatching (gen_and, gen_or, gen_not) in
// continuation form, and it produces the same graph. Accepting ends in one
// `ret #snaplen` block, rejecting in one `ret #0` block.
//
// layout() orders blocks as libpcap's icode_to_fcode does: a depth-first walk that
// explores the false edge before the true one and places each block in front of
// everything placed so far (reverse post-order), so every jump goes forward. A
// conditional jump can reach at most 255 instructions; a target further away gets an
// unconditional `ja` right after the block (libpcap's longjt/longjf), and the layout
// is recomputed until every offset fits.
//
// A jump among a block's statements (the live VLAN id test has two) stays where it
// is, with its offsets within the block, as libpcap's convert_code_r lays out its
// "block-local relative jumps"; the emitted program says which instructions these
// are, so that the optimizer can keep them inside their block as libpcap's does.

import type { BpfInstruction } from '../bpf.js';
import { NetpdError } from '../errors.js';
import type { Cond, Leaf } from './gencode.js';

/**
 * The longest unoptimized program laid out: four times the 4,096 instructions the
 * kernel runs (the optimizer often shrinks a long `or` chain to a few instructions,
 * so more than 4,096 may still compile). Past it the optimizer's passes would take
 * seconds to minutes (libpcap's take minutes: tcpdump spends over two on 18,000
 * `tcp or`s), so the expression is refused instead.
 */
export const MAX_UNOPTIMIZED = 16384;

interface Block {
  stmts: BpfInstruction[];
  /** A conditional jump (code, k), or null for a return block. */
  jump: number | null;
  k: number;
  jt: Block | null;
  jf: Block | null;
}

/**
 * The block a condition starts with, its leaves wired to `t` and `f`. The right side of
 * an `and`/`or` is wired first (its head is where the left side goes on); pending left
 * sides wait on an explicit stack, since conditions nest as deep as expressions are long.
 */
function wire(c: Cond, t: Block, f: Block): Block {
  const pending: { op: 'and' | 'or'; l: Cond; t: Block; f: Block }[] = [];
  for (;;) {
    while (c.t !== 'leaf') {
      if (c.t === 'not') {
        [t, f] = [f, t];
        c = c.e;
      } else {
        pending.push({ op: c.t, l: c.l, t, f });
        c = c.r;
      }
    }
    const b = leafBlock(c, t, f);
    const p = pending.pop();
    if (!p) return b;
    // `a and b`: a's true edge goes to b; `a or b`: a's false edge does.
    c = p.l;
    t = p.op === 'and' ? b : p.t;
    f = p.op === 'and' ? p.f : b;
  }
}

function leafBlock(l: Leaf, t: Block, f: Block): Block {
  return { stmts: l.stmts, jump: l.jump, k: l.k, jt: t, jf: f };
}

/** Blocks in reverse post-order, false edge explored first (an explicit stack: chains are long). */
function order(root: Block): Block[] {
  const placed: Block[] = [];
  const seen = new Set<Block>([root]);
  // Each entry: a block and how many of its successors (jf, then jt) were explored.
  const stack: { b: Block; next: number }[] = [{ b: root, next: 0 }];
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const succ = top.next === 0 ? top.b.jf : top.next === 1 ? top.b.jt : undefined;
    top.next++;
    if (succ === undefined) {
      stack.pop();
      placed.push(top.b);
    } else if (succ && !seen.has(succ)) {
      seen.add(succ);
      stack.push({ b: succ, next: 0 });
    }
  }
  return placed.reverse();
}

/** A laid-out program, and the indices of its jumps that lie inside a block. */
export interface Emitted {
  program: BpfInstruction[];
  localJumps: Set<number>;
}

/** Turns a condition (or null: accept everything) into a program returning snaplen or 0. */
export function emitProgram(cond: Cond | null, snaplen: number): Emitted {
  const accept: Block = { stmts: [], jump: null, k: snaplen >>> 0, jt: null, jf: null };
  const reject: Block = { stmts: [], jump: null, k: 0, jt: null, jf: null };
  if (cond === null) return { program: [{ code: 0x06, jt: 0, jf: 0, k: snaplen >>> 0 }], localJumps: new Set() };
  const blocks = order(wire(cond, accept, reject));
  let length = 0;
  for (const b of blocks) length += b.stmts.length + 1;
  if (length > MAX_UNOPTIMIZED) {
    throw new NetpdError('EFILTER', `expression too large: its unoptimized program has ${length} instructions, more than the ${MAX_UNOPTIMIZED} the compiler takes (the kernel runs at most 4096)`, { details: { instructions: length } });
  }
  const longJt = new Set<Block>();
  const longJf = new Set<Block>();
  for (;;) {
    const start = new Map<Block, number>();
    let pc = 0;
    for (const b of blocks) {
      start.set(b, pc);
      pc += b.stmts.length + 1 + (longJt.has(b) ? 1 : 0) + (longJf.has(b) ? 1 : 0);
    }
    let grew = false;
    const out: BpfInstruction[] = [];
    const localJumps = new Set<number>();
    for (const b of blocks) {
      for (const s of b.stmts) {
        if ((s.code & 0x07) === 0x05) localJumps.add(out.length);
        out.push({ ...s });
      }
      if (b.jump === null) {
        out.push({ code: 0x06, jt: 0, jf: 0, k: b.k });
        continue;
      }
      const here = out.length;
      const extra: BpfInstruction[] = [];
      const offset = (target: Block, long: Set<Block>) => {
        const d = start.get(target)! - (here + 1);
        if (long.has(b)) {
          // The long jump sits after the conditional jump (and after the jt one, for jf).
          const at = here + 1 + extra.length;
          extra.push({ code: 0x05, jt: 0, jf: 0, k: start.get(target)! - (at + 1) });
          return at - (here + 1);
        }
        if (d > 255) {
          long.add(b);
          grew = true;
        }
        return d;
      };
      const jt = offset(b.jt!, longJt);
      const jf = offset(b.jf!, longJf);
      out.push({ code: b.jump, jt, jf, k: b.k }, ...extra);
    }
    if (!grew) return { program: out, localJumps };
  }
}
