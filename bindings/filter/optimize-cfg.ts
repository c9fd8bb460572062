// The optimizer's program representation: a DAG of basic blocks built from a
// classic BPF program, the graph clean-ups that need no data-flow facts, and the
// linearizer that turns the DAG back into instructions (with `ja` long jumps where a
// conditional offset does not fit in 8 bits).
//
// A block is a list of straight-line statements (loads, stores, ALU, tax/txa)
// ended by one terminator:
//
//   ret #k / ret a      code class RET, no successors
//   goto T              code JMP|JA, jt = jf = T (an unconditional edge; emitted as
//                       nothing when T is laid out next, as `ja` otherwise)
//   jxx #k|x  T, F      a conditional jump, jt = T, jf = F
//
// Scratch memory words and the two registers are "atoms" 0..17 (M[0..15], A, X);
// sets of atoms are 18-bit masks.

import type { BpfInstruction } from '../bpf.js';
import { NetpdError } from '../errors.js';

// ---------------------------------------------------------------- opcode fields
export const LD = 0x00, LDX = 0x01, ST = 0x02, STX = 0x03, ALU = 0x04, JMP = 0x05, RET = 0x06, MISC = 0x07;
export const W = 0x00, H = 0x08, B = 0x10;
export const IMM = 0x00, ABS = 0x20, IND = 0x40, MEM = 0x60, LEN = 0x80, MSH = 0xa0;
export const ADD = 0x00, SUB = 0x10, MUL = 0x20, DIV = 0x30, OR = 0x40, AND = 0x50, LSH = 0x60, RSH = 0x70, NEG = 0x80, MOD = 0x90, XOR = 0xa0;
export const JA = 0x00, JEQ = 0x10, JGT = 0x20, JGE = 0x30, JSET = 0x40;
export const SRC_K = 0x00, SRC_X = 0x08;
export const RET_A = RET | 0x10;
export const TAX = MISC | 0x00, TXA = MISC | 0x80;
export const GOTO = JMP | JA;
/** Ancillary loads start here (Linux SKF_AD_OFF); the optimizer never creates an absolute load at or above it. */
export const SKF_AD_OFF = 0xfffff000;

export const cls = (code: number) => code & 0x07;
export const mode = (code: number) => code & 0xe0;
export const aluOp = (code: number) => code & 0xf0;
export const isXSrc = (code: number) => (code & 0x08) !== 0;

/** Every opcode the Linux classic-BPF rules (and so netpd) accept. */
const VALID = new Set([
  0x04, 0x0c, 0x14, 0x1c, 0x24, 0x2c, 0x34, 0x3c, 0x94, 0x9c, 0x54, 0x5c, 0x44, 0x4c, 0xa4, 0xac,
  0x64, 0x6c, 0x74, 0x7c, 0x84, 0x20, 0x28, 0x30, 0x40, 0x48, 0x50, 0x80, 0x00, 0x60, 0x81, 0xb1,
  0x01, 0x61, 0x02, 0x03, 0x07, 0x87, 0x06, 0x16, 0x05, 0x15, 0x1d, 0x25, 0x2d, 0x35, 0x3d, 0x45, 0x4d,
]);

// ---------------------------------------------------------------- atoms
export const A = 16, X = 17, N_ATOMS = 18;
export const BIT_A = 1 << A, BIT_X = 1 << X;

/** A straight-line instruction (never a jump or a return). */
export interface Stmt { code: number; k: number }

export class Block {
  stmts: Stmt[] = [];
  /** Terminator: RET|K, RET|A, GOTO, or a conditional jump. */
  code = RET;
  k = 0;
  jt: Block | null = null;
  jf: Block | null = null;
  /** Where the block came from in the input; the linearizer keeps that order where it can. */
  pos: number;
  readonly id: number;

  // ---- data-flow results, valid from one analysis until the next change
  preds: Block[] = [];
  /** Reached from the root over the current edges (set by the analysis). */
  reached = false;
  /** Value numbers of the atoms on entry and on exit. */
  entry: number[] = [];
  exit: number[] = [];
  /** What the tests on every path into the block established (see optimize-values.ts). */
  facts: Fact | null = null;
  liveIn = 0;
  liveOut = 0;

  constructor(id: number, pos: number) {
    this.id = id;
    this.pos = pos;
  }
}

/**
 * A test outcome known to hold: `a OP o` is `t` (values are value numbers). Facts
 * form immutable lists shared between blocks: a block's list is its predecessor's
 * with one more fact in front, or a fresh intersection where paths merge.
 */
export interface Fact {
  readonly op: number;
  readonly a: number;
  readonly o: number;
  readonly t: boolean;
  readonly next: Fact | null;
}

export const isRet = (b: Block) => cls(b.code) === RET;
export const isGoto = (b: Block) => b.code === GOTO;
export const isCond = (b: Block) => cls(b.code) === JMP && b.code !== GOTO;

// ---------------------------------------------------------------- uses and definitions

/** The atoms a statement reads. */
export function stmtUses(s: Stmt): number {
  const c = s.code;
  switch (cls(c)) {
    case LD: return mode(c) === IND ? BIT_X : mode(c) === MEM ? 1 << s.k : 0;
    case LDX: return mode(c) === MEM ? 1 << s.k : 0;
    case ST: return BIT_A;
    case STX: return BIT_X;
    case ALU: return aluOp(c) === NEG ? BIT_A : isXSrc(c) ? BIT_A | BIT_X : BIT_A;
    default: return c === TXA ? BIT_X : BIT_A; // MISC
  }
}

/** The atom a statement writes. */
export function stmtDef(s: Stmt): number {
  switch (cls(s.code)) {
    case LD: case ALU: return A;
    case LDX: return X;
    case ST: case STX: return s.k;
    default: return s.code === TAX ? X : A;
  }
}

/** Division or modulo by X: rejects the packet when X is 0, so it is never deleted or moved. */
export const isTrap = (s: Stmt) => s.code === (ALU | DIV | SRC_X) || s.code === (ALU | MOD | SRC_X);

/** The atoms a terminator reads. */
export function termUses(b: Block): number {
  if (b.code === RET_A) return BIT_A;
  if (isCond(b)) return isXSrc(b.code) ? BIT_A | BIT_X : BIT_A;
  return 0;
}

/** Atoms a block reads before writing them, given what is live after it ("strong" liveness: dead statements read nothing). */
export function blockLiveIn(b: Block, liveOut: number): number {
  let live = liveOut | termUses(b);
  for (let i = b.stmts.length - 1; i >= 0; i--) {
    const s = b.stmts[i];
    const d = 1 << stmtDef(s);
    if ((live & d) === 0 && !isTrap(s)) continue;
    live = (live & ~d) | stmtUses(s);
  }
  return live;
}

export function blockDefs(b: Block): number {
  let d = 0;
  for (const s of b.stmts) d |= 1 << stmtDef(s);
  return d;
}

// ---------------------------------------------------------------- building the graph

/** Splits a program into blocks. The program must jump only forward and end in a return. */
export function buildCfg(program: readonly BpfInstruction[]): { root: Block; nextId: number } {
  const n = program.length;
  if (!Array.isArray(program) || n < 1) throw new NetpdError('EBADPROG', 'cannot optimize an empty program');
  const leader = new Uint8Array(n + 1);
  leader[0] = 1;
  const bad = (pc: number, why: string): never => {
    throw new NetpdError('EBADPROG', `instruction ${pc}: ${why}`, { details: { instruction: pc, rule: why } });
  };
  for (let pc = 0; pc < n; pc++) {
    const ins = program[pc];
    if (!ins || !VALID.has(ins.code)) bad(pc, 'unknown or unsupported opcode');
    const c = ins.code;
    if (cls(c) === JMP) {
      if (c === GOTO) {
        const t = pc + 1 + ins.k;
        if (!(ins.k >= 0 && t < n)) bad(pc, 'jump target outside the program (the optimizer takes forward jumps only)');
        leader[t] = 1;
      } else {
        const t = pc + 1 + ins.jt, f = pc + 1 + ins.jf;
        if (!(ins.jt >= 0 && ins.jf >= 0 && t < n && f < n)) bad(pc, 'jump target outside the program');
        leader[t] = 1;
        leader[f] = 1;
      }
      leader[pc + 1] = 1;
    } else if (cls(c) === RET) {
      leader[pc + 1] = 1;
    } else if ((c === (ALU | DIV) || c === (ALU | MOD)) && ins.k === 0) {
      bad(pc, 'division or modulo by constant zero');
    }
  }
  if (cls(program[n - 1].code) !== RET) bad(n - 1, 'the last instruction must be a return');

  const at: (Block | undefined)[] = new Array(n);
  let nextId = 0;
  for (let pc = 0; pc < n; pc++) if (leader[pc]) at[pc] = new Block(nextId++, pc);
  for (let start = 0; start < n; start++) {
    const b = at[start];
    if (!b || !leader[start]) continue;
    for (let pc = start; ; pc++) {
      const ins = program[pc];
      const c = ins.code;
      if (cls(c) === RET) {
        b.code = c;
        b.k = ins.k >>> 0;
        break;
      }
      if (cls(c) === JMP) {
        if (c === GOTO) {
          b.code = GOTO;
          b.jt = b.jf = at[pc + 1 + ins.k]!;
        } else {
          b.code = c;
          b.k = ins.k >>> 0;
          b.jt = at[pc + 1 + ins.jt]!;
          b.jf = at[pc + 1 + ins.jf]!;
        }
        break;
      }
      b.stmts.push({ code: c, k: ins.k >>> 0 });
      if (leader[pc + 1]) {
        b.code = GOTO;
        b.jt = b.jf = at[pc + 1]!;
        break;
      }
    }
  }
  return { root: at[0]!, nextId };
}

// ---------------------------------------------------------------- walking the graph

/** The blocks reachable from `root`, in topological order (every edge goes forward in the list). */
export function topoOrder(root: Block): Block[] {
  const post: Block[] = [];
  const seen = new Set<Block>();
  // Iterative depth-first search; the false side is pushed last so it is visited
  // first, which keeps the order close to the input's.
  const stack: { b: Block; state: number }[] = [{ b: root, state: 0 }];
  seen.add(root);
  while (stack.length > 0) {
    const top = stack[stack.length - 1];
    const b = top.b;
    const next = top.state === 0 ? b.jf : top.state === 1 ? b.jt : null;
    top.state++;
    if (top.state > 2) {
      stack.pop();
      post.push(b);
      continue;
    }
    if (next && !seen.has(next)) {
      seen.add(next);
      stack.push({ b: next, state: 0 });
    }
  }
  return post.reverse();
}

/** Sets `preds` of every block in `order` (a topological order of the reachable blocks). */
export function linkPreds(order: Block[]): void {
  for (const b of order) b.preds = [];
  for (const b of order) {
    if (b.jt) b.jt.preds.push(b);
    if (b.jf && b.jf !== b.jt) b.jf.preds.push(b);
  }
}

export function replaceSucc(p: Block, from: Block, to: Block): void {
  if (p.jt === from) p.jt = to;
  if (p.jf === from) p.jf = to;
}

export function makeGoto(b: Block, to: Block): void {
  b.code = GOTO;
  b.k = 0;
  b.jt = b.jf = to;
}

export function makeRet(b: Block, code: number, k: number): void {
  b.code = code;
  b.k = k;
  b.jt = b.jf = null;
}

// ---------------------------------------------------------------- clean-ups without facts

/**
 * Graph normalization, repeated until nothing changes:
 *  - a conditional jump whose two targets are one block becomes a goto;
 *  - edges skip empty goto blocks;
 *  - a goto to a bare return becomes that return;
 *  - a goto to a block with no other predecessor absorbs that block;
 *  - identical blocks (same statements, same terminator, same successors) become one.
 * Returns the (possibly new) root and whether anything changed.
 */
export function normalize(root: Block): { root: Block; changed: boolean } {
  let changed = false;
  for (let round = 0; round < 64; round++) {
    let again = false;
    let order = topoOrder(root);
    const skip = (b: Block): Block => {
      let t = b;
      for (let i = 0; i < 4096 && isGoto(t) && t.stmts.length === 0; i++) t = t.jt!;
      return t;
    };
    for (const b of order) {
      if (isCond(b) && b.jt === b.jf) {
        makeGoto(b, b.jt!);
        again = true;
      }
      if (b.jt) {
        const t = skip(b.jt), f = skip(b.jf!);
        if (t !== b.jt || f !== b.jf) {
          b.jt = t;
          b.jf = f;
          again = true;
          if (isCond(b) && t === f) makeGoto(b, t);
        }
      }
      if (isGoto(b) && isRet(b.jt!) && b.jt!.stmts.length === 0) {
        makeRet(b, b.jt!.code, b.jt!.k);
        again = true;
      }
    }
    const r = skip(root);
    if (r !== root) {
      root = r;
      again = true;
    }
    order = topoOrder(root);
    linkPreds(order);
    const absorbed = new Set<Block>();
    for (const b of order) {
      if (absorbed.has(b)) continue;
      // Absorb a goto's target when this block is its only way in.
      while (isGoto(b) && b.jt !== root && b.jt !== b && b.jt!.preds.length === 1) {
        const c = b.jt!;
        absorbed.add(c);
        b.stmts = b.stmts.concat(c.stmts);
        b.code = c.code;
        b.k = c.k;
        b.jt = c.jt;
        b.jf = c.jf;
        for (const s of [c.jt, c.jf]) {
          if (s) {
            const i = s.preds.indexOf(c);
            if (i >= 0) s.preds[i] = b;
          }
        }
        c.preds = [];
        again = true;
      }
    }
    if (again) order = topoOrder(root);
    const merged = internBlocks(order);
    if (merged.size > 0) {
      root = merged.get(root) ?? root;
      again = true;
    }
    if (!again) break;
    changed = true;
  }
  return { root, changed };
}

/** Merges structurally identical blocks; returns the map from each dropped block to its stand-in. */
function internBlocks(order: Block[]): Map<Block, Block> {
  const canon = new Map<Block, Block>();
  const bySig = new Map<string, Block>();
  const c = (b: Block | null) => (b ? canon.get(b) ?? b : null);
  for (let i = order.length - 1; i >= 0; i--) {
    const b = order[i];
    b.jt = c(b.jt);
    b.jf = c(b.jf);
    let sig = `${b.code},${b.k},${b.jt ? b.jt.id : -1},${b.jf ? b.jf.id : -1}`;
    for (const s of b.stmts) sig += `;${s.code},${s.k}`;
    const same = bySig.get(sig);
    if (same) canon.set(b, same);
    else bySig.set(sig, b);
  }
  return canon;
}

// ---------------------------------------------------------------- linearization

/**
 * Lays the blocks out in a topological order — a goto's target right after it when
 * possible, otherwise the input's order — and emits instructions. A conditional
 * jump whose offset exceeds 255 goes through a `ja` placed right after it, as
 * libpcap does.
 */
export function emit(root: Block): BpfInstruction[] {
  const order = layout(root);
  const index = new Map<Block, number>();
  order.forEach((b, i) => index.set(b, i));
  const longT = new Uint8Array(order.length);
  const longF = new Uint8Array(order.length);
  const start = new Int32Array(order.length + 1);
  const termSize = (b: Block, i: number) => {
    if (isRet(b)) return 1;
    if (isGoto(b)) return index.get(b.jt!) === i + 1 ? 0 : 1;
    return 1 + longT[i] + longF[i];
  };
  // Long jumps only ever get added, so this settles.
  for (;;) {
    for (let i = 0; i < order.length; i++) start[i + 1] = start[i] + order[i].stmts.length + termSize(order[i], i);
    let grew = false;
    for (let i = 0; i < order.length; i++) {
      const b = order[i];
      if (!isCond(b)) continue;
      const pc = start[i] + b.stmts.length;
      if (!longT[i] && start[index.get(b.jt!)!] - (pc + 1) > 255) { longT[i] = 1; grew = true; }
      if (!longF[i] && start[index.get(b.jf!)!] - (pc + 1) > 255) { longF[i] = 1; grew = true; }
    }
    if (!grew) break;
  }
  const out: BpfInstruction[] = [];
  for (let i = 0; i < order.length; i++) {
    const b = order[i];
    for (const s of b.stmts) out.push({ code: s.code, jt: 0, jf: 0, k: s.k >>> 0 });
    const pc = out.length;
    if (isRet(b)) {
      out.push({ code: b.code, jt: 0, jf: 0, k: b.code === RET_A ? 0 : b.k >>> 0 });
    } else if (isGoto(b)) {
      const t = start[index.get(b.jt!)!];
      if (t !== pc) out.push({ code: GOTO, jt: 0, jf: 0, k: t - (pc + 1) });
    } else {
      const t = start[index.get(b.jt!)!], f = start[index.get(b.jf!)!];
      let extra = 0;
      let jt: number, jf: number;
      const jumps: BpfInstruction[] = [];
      if (longT[i]) { jt = extra++; jumps.push({ code: GOTO, jt: 0, jf: 0, k: t - (pc + 1 + extra) }); } else jt = t - (pc + 1);
      if (longF[i]) { jf = extra++; jumps.push({ code: GOTO, jt: 0, jf: 0, k: f - (pc + 1 + extra) }); } else jf = f - (pc + 1);
      out.push({ code: b.code, jt, jf, k: isXSrc(b.code) ? 0 : b.k >>> 0 }, ...jumps);
    }
  }
  return out;
}

/** A topological order: Kahn's algorithm, preferring a goto's target, then the input's order. */
function layout(root: Block): Block[] {
  const order = topoOrder(root);
  linkPreds(order);
  const waiting = new Map<Block, number>();
  for (const b of order) waiting.set(b, b.preds.length);
  const ready: Block[] = [root];
  const out: Block[] = [];
  let last: Block | null = null;
  const release = (s: Block | null) => {
    if (!s) return;
    const w = waiting.get(s)! - 1;
    waiting.set(s, w);
    if (w === 0) ready.push(s);
  };
  while (ready.length > 0) {
    let pick = -1;
    if (last && isGoto(last)) pick = ready.indexOf(last.jt!);
    if (pick < 0) {
      // Returns go last; otherwise the block that came first in the input.
      pick = 0;
      for (let i = 1; i < ready.length; i++) {
        const a = ready[i], p = ready[pick];
        const ka = isRet(a) ? 1 : 0, kp = isRet(p) ? 1 : 0;
        if (ka < kp || (ka === kp && (a.pos < p.pos || (a.pos === p.pos && a.id < p.id)))) pick = i;
      }
    }
    const b = ready.splice(pick, 1)[0];
    out.push(b);
    last = b;
    release(b.jt);
    if (b.jf !== b.jt) release(b.jf);
  }
  return out;
}
