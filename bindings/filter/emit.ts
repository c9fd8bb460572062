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
import type { Cond, Leaf } from './gencode.js';

interface Block {
  stmts: BpfInstruction[];
  /** A conditional jump (code, k), or null for a return block. */
  jump: number | null;
  k: number;
  jt: Block | null;
  jf: Block | null;
}

function wire(c: Cond, t: Block, f: Block): Block {
  switch (c.t) {
    case 'leaf': return leafBlock(c, t, f);
    case 'not': return wire(c.e, f, t);
    case 'and': return wire(c.l, wire(c.r, t, f), f);
    case 'or': return wire(c.l, t, wire(c.r, t, f));
  }
}

function leafBlock(l: Leaf, t: Block, f: Block): Block {
  return { stmts: l.stmts, jump: l.jump, k: l.k, jt: t, jf: f };
}

function order(root: Block): Block[] {
  const placed: Block[] = [];
  const seen = new Set<Block>();
  const visit = (b: Block | null) => {
    if (!b || seen.has(b)) return;
    seen.add(b);
    visit(b.jf);
    visit(b.jt);
    placed.push(b);
  };
  visit(root);
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
