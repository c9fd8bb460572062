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
// Statements may also be jumps that stay inside the block ("local jumps"): libpcap's
// code generator makes them for the live VLAN id test (gen_vlan_patch_vid_test), and
// its optimizer keeps them among the block's statements rather than cutting the block
// there, so its value numbering and branch decisions see one block. To do the same,
// the optimizer is told which jumps they are; their offsets count statements, the
// terminator counting as one past the last, and are kept right as statements go
// (a jump to a dropped statement lands on the next one). Liveness, stores and values
// follow the paths they open inside the block (see liveBefore, dropStmts, and
// simulate in optimize.ts).
//
// Scratch memory words and the two registers are "atoms" 0..17 (M[0..15], A, X);
// sets of atoms are 18-bit masks.

import type { BpfInstruction } from '../bpf.js';
import { NetpdError } from '../errors.js';

// Opcode fields live in opcodes.ts; re-exported for the optimizer's other modules.
export * from './opcodes.js';
import { LD, LDX, ST, STX, ALU, JMP, RET, MISC, IND, MEM, DIV, NEG, MOD, JA, SRC_X, RET_A, TAX, TXA, GOTO } from './opcodes.js';

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

/**
 * A straight-line instruction, or a local jump (never a return): jt/jf for a
 * conditional one, k for `ja`, count statements from the next one.
 */
export interface Stmt { code: number; k: number; jt?: number; jf?: number }

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
  /** The facts on exit: the entry facts plus "X was not 0" for each division by X that passed. */
  outFacts: Fact | null = null;
  liveIn = 0;
  liveOut = 0;
  /** Some return that can accept is reachable (otherwise a division by zero here changes nothing). */
  canAccept = true;
  /** Visit mark for graph walks. */
  mark = 0;
  /** Layout scratch: predecessors not yet placed, the kernel check's state where jumps meet, scratch words live on entry. */
  waiting = 0;
  memMask = 0;
  memLive = 0;

  constructor(id: number, pos: number) {
    this.id = id;
    this.pos = pos;
  }
}

/**
 * A test outcome known to hold: `a OP o` is `t` (values are value numbers),
 * established at `origin` (a block's jump taken one way, or a division that passed).
 * Facts form immutable lists shared between blocks: a block's list is its
 * predecessor's with one more fact in front, or, where paths merge, the facts of
 * the origins every path went through (libpcap's edge dominators).
 */
export interface Fact {
  readonly op: number;
  readonly a: number;
  readonly o: number;
  readonly t: boolean;
  readonly origin: number;
  readonly next: Fact | null;
}

export const isRet = (b: Block) => cls(b.code) === RET;
export const isGoto = (b: Block) => b.code === GOTO;
export const isCond = (b: Block) => cls(b.code) === JMP && b.code !== GOTO;

// ---------------------------------------------------------------- uses and definitions

export const isLocalJump = (s: Stmt) => cls(s.code) === JMP;
export const hasLocalJump = (b: Block) => b.stmts.some(isLocalJump);

/** Where the local jump at index i of its block can go (the block's length: its terminator). */
export function localTargets(s: Stmt, i: number): number[] {
  return s.code === GOTO ? [i + 1 + s.k] : [i + 1 + s.jt!, i + 1 + s.jf!];
}

/** The atoms a statement reads. */
export function stmtUses(s: Stmt): number {
  const c = s.code;
  switch (cls(c)) {
    case JMP: return c === GOTO ? 0 : isXSrc(c) ? BIT_A | BIT_X : BIT_A;
    case LD: return mode(c) === IND ? BIT_X : mode(c) === MEM ? 1 << s.k : 0;
    case LDX: return mode(c) === MEM ? 1 << s.k : 0;
    case ST: return BIT_A;
    case STX: return BIT_X;
    case ALU: return aluOp(c) === NEG ? BIT_A : isXSrc(c) ? BIT_A | BIT_X : BIT_A;
    default: return c === TXA ? BIT_X : BIT_A; // MISC
  }
}

/** The atom a statement writes (never asked of a local jump, which writes none). */
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

/**
 * Liveness backwards through `stmts`, from `live` after the last: returns what is
 * live before the first. `counts(i, after)`, given what is live after statement i,
 * says whether it counts (one that does not reads nothing); without it all count.
 * A local jump always counts, and sees what is live where it can go.
 */
export function liveBefore(stmts: readonly Stmt[], live: number, counts?: (i: number, after: number) => boolean): number {
  const at: number[] | null = stmts.some(isLocalJump) ? new Array<number>(stmts.length + 1) : null;
  if (at) at[stmts.length] = live;
  for (let i = stmts.length - 1; i >= 0; i--) {
    const s = stmts[i];
    if (at && isLocalJump(s)) {
      live = stmtUses(s);
      for (const t of localTargets(s, i)) live |= at[t];
    } else if (!counts || counts(i, live)) {
      live = (live & ~(1 << stmtDef(s))) | stmtUses(s);
    }
    if (at) at[i] = live;
  }
  return live;
}

/** Atoms a block reads before writing them, given what is live after it ("strong" liveness: dead statements read nothing). */
export function blockLiveIn(b: Block, liveOut: number): number {
  return liveBefore(b.stmts, liveOut | termUses(b), (i, after) => (after & (1 << stmtDef(b.stmts[i]))) !== 0 || isTrap(b.stmts[i]));
}

/** The statements of `stmts` that `keep` marks (local jumps must be among them), with the local jumps' offsets adjusted. */
export function dropStmts(stmts: readonly Stmt[], keep: readonly boolean[]): Stmt[] {
  if (!stmts.some(isLocalJump)) return stmts.filter((_, i) => keep[i]);
  // at[i]: the new index of the first kept statement from i on (a jump to a dropped one lands there).
  const at = new Array<number>(stmts.length + 1);
  let n = 0;
  for (let i = 0; i < stmts.length; i++) {
    at[i] = n;
    if (keep[i]) n++;
  }
  at[stmts.length] = n;
  const out: Stmt[] = [];
  stmts.forEach((s, i) => {
    if (!keep[i]) return;
    if (!isLocalJump(s)) out.push(s);
    else if (s.code === GOTO) out.push({ code: s.code, k: at[i + 1 + s.k] - at[i] - 1 });
    else out.push({ code: s.code, k: s.k, jt: at[i + 1 + s.jt!] - at[i] - 1, jf: at[i + 1 + s.jf!] - at[i] - 1 });
  });
  return out;
}

// ---------------------------------------------------------------- building the graph

/**
 * Splits a program into blocks. The program must jump only forward and end in a
 * return. The jumps at `localJumps` stay statements of their block (each must land
 * in it, at most on its terminator).
 */
export function buildCfg(program: readonly BpfInstruction[], localJumps: ReadonlySet<number> = new Set()): Block {
  const n = program.length;
  if (!Array.isArray(program) || n < 1) throw new NetpdError('EBADPROG', 'cannot optimize an empty program');
  const leader = new Uint8Array(n + 1);
  leader[0] = 1;
  const bad = (pc: number, why: string): never => {
    throw new NetpdError('EBADPROG', `instruction ${pc}: ${why}`, { details: { instruction: pc, rule: why } });
  };
  const locals: number[] = [];
  for (let pc = 0; pc < n; pc++) {
    const ins = program[pc];
    if (!ins || !VALID.has(ins.code)) bad(pc, 'unknown or unsupported opcode');
    const c = ins.code;
    if (cls(c) === JMP && localJumps.has(pc)) {
      const far = pc + 1 + (c === GOTO ? ins.k : Math.max(ins.jt, ins.jf));
      if (!(far > pc && far < n)) bad(pc, 'jump target outside the program');
      locals.push(pc);
    } else if (cls(c) === JMP) {
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
  const ends = (pc: number) => cls(program[pc].code) === RET || (cls(program[pc].code) === JMP && !localJumps.has(pc));
  for (const pc of locals) {
    const ins = program[pc];
    const far = pc + 1 + (ins.code === GOTO ? ins.k : Math.max(ins.jt, ins.jf));
    for (let q = pc + 1; q < far; q++) if (leader[q] || ends(q)) bad(pc, 'a block-local jump leaves its block');
  }

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
      if (cls(c) === JMP && !localJumps.has(pc)) {
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
      b.stmts.push(cls(c) === JMP && c !== GOTO ? { code: c, k: ins.k >>> 0, jt: ins.jt, jf: ins.jf } : { code: c, k: ins.k >>> 0 });
      if (leader[pc + 1]) {
        b.code = GOTO;
        b.jt = b.jf = at[pc + 1]!;
        break;
      }
    }
  }
  return at[0]!;
}

// ---------------------------------------------------------------- walking the graph

let epoch = 0;

/** The blocks reachable from `root`, in topological order (every edge goes forward in the list). */
export function topoOrder(root: Block): Block[] {
  const mark = ++epoch;
  const post: Block[] = [];
  // Iterative depth-first search; the false side is visited first, which keeps
  // the order close to the input's.
  const stack: Block[] = [root];
  const state: number[] = [0];
  root.mark = mark;
  while (stack.length > 0) {
    const top = stack.length - 1;
    const b = stack[top];
    const st = state[top]++;
    if (st >= 2) {
      stack.pop();
      state.pop();
      post.push(b);
      continue;
    }
    const next = st === 0 ? b.jf : b.jt;
    if (next && next.mark !== mark) {
      next.mark = mark;
      stack.push(next);
      state.push(0);
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
 *  - a conditional jump whose two targets are one block becomes a goto, if
 *    `dropTests` (and it is not the root's; see dropSettledTests in optimize.ts);
 *  - edges skip empty goto blocks (so they reach the very block a goto leads to,
 *    as libpcap's do: two sides reaching one return reach one block);
 *  - a goto to a block with no other predecessor absorbs that block;
 *  - identical blocks (same statements, same terminator, same successors) become
 *    one, if not `dropTests` (libpcap merges them only after its loops, when no
 *    test it settles is jumped around any more).
 * Returns the (possibly new) root, whether anything changed, and the blocks in
 * topological order with their predecessors linked.
 */
export function normalize(root: Block, dropTests = true): { root: Block; changed: boolean; order: Block[] } {
  let changed = false;
  const skip = (b: Block): Block => {
    let t = b;
    for (let i = 0; i < 4096 && isGoto(t) && t.stmts.length === 0; i++) t = t.jt!;
    return t;
  };
  for (let round = 0; ; round++) {
    let again = false;
    let order = topoOrder(root);
    for (const b of order) {
      if (dropTests && isCond(b) && b.jt === b.jf && b !== root) {
        makeGoto(b, b.jt!);
        again = true;
      }
      if (b.jt) {
        const t = skip(b.jt), f = skip(b.jf!);
        if (t !== b.jt || f !== b.jf) {
          b.jt = t;
          b.jf = f;
          again = true;
          if (dropTests && isCond(b) && t === f && b !== root) makeGoto(b, t);
        }
      }
    }
    const r = skip(root);
    if (r !== root) {
      root = r;
      again = true;
    }
    if (again) order = topoOrder(root);
    linkPreds(order);
    let absorbed = false;
    for (const b of order) {
      if (b !== root && b.preds.length === 0) continue; // absorbed this round
      // Absorb a goto's target when this block is its only way in.
      while (isGoto(b) && b.jt !== b && b.jt!.preds.length === 1) {
        const c = b.jt!;
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
        absorbed = true;
      }
    }
    if (absorbed) {
      order = topoOrder(root);
      again = true;
    }
    const merged = dropTests ? null : internBlocks(order);
    if (merged) {
      root = merged.get(root) ?? root;
      again = true;
    }
    if (!again || round >= 64) {
      if (again) {
        order = topoOrder(root);
        linkPreds(order);
      }
      return { root, changed: changed || again, order };
    }
    changed = true;
  }
}

/** Merges structurally identical blocks; returns the map from each dropped block to its stand-in, or null. */
function internBlocks(order: Block[]): Map<Block, Block> | null {
  let canon: Map<Block, Block> | null = null;
  const byHash = new Map<number, Block[]>();
  const c = (b: Block | null) => (b && canon ? canon.get(b) ?? b : b);
  for (let i = order.length - 1; i >= 0; i--) {
    const b = order[i];
    b.jt = c(b.jt);
    b.jf = c(b.jf);
    let h = Math.imul(b.code + 1, 0x9e3779b1) ^ Math.imul(b.k | 0, 0x85ebca6b) ^ Math.imul(b.jt ? b.jt.id + 1 : 0, 0xc2b2ae35) ^ (b.jf ? b.jf.id + 1 : 0);
    for (const s of b.stmts) h = Math.imul(h ^ (s.code + Math.imul(s.k | 0, 31) + ((s.jt ?? 0) << 8) + (s.jf ?? 0)), 0x27d4eb2f) ^ (h >>> 13);
    const same = byHash.get(h);
    const twin = same?.find((o) => sameBlock(o, b));
    if (twin) (canon ??= new Map()).set(b, twin);
    else if (same) same.push(b);
    else byHash.set(h, [b]);
  }
  return canon;
}

function sameBlock(a: Block, b: Block): boolean {
  if (a.code !== b.code || a.k !== b.k || a.jt !== b.jt || a.jf !== b.jf || a.stmts.length !== b.stmts.length) return false;
  for (let i = 0; i < a.stmts.length; i++) {
    const s = a.stmts[i], t = b.stmts[i];
    if (s.code !== t.code || s.k !== t.k || s.jt !== t.jt || s.jf !== t.jf) return false;
  }
  return true;
}

// ---------------------------------------------------------------- linearization

/**
 * Lays the blocks out in a topological order — a goto's target right after it when
 * possible, otherwise the input's order — and emits instructions. A conditional
 * jump whose offset exceeds 255 goes through a `ja` placed right after it, as
 * libpcap does.
 */
export function emit(root: Block): BpfInstruction[] {
  const { order, resetBefore } = layout(root);
  const index = new Map<Block, number>();
  order.forEach((b, i) => index.set(b, i));
  const longT = new Uint8Array(order.length);
  const longF = new Uint8Array(order.length);
  const start = new Int32Array(order.length + 1); // where each block's first instruction lands
  const reset = (i: number) => (resetBefore.has(i) ? 1 : 0);
  const termSize = (b: Block, i: number) => {
    if (isRet(b)) return 1;
    if (isGoto(b)) return index.get(b.jt!) === i + 1 && !resetBefore.has(i + 1) ? 0 : 1;
    return 1 + longT[i] + longF[i];
  };
  const at = (b: Block) => start[index.get(b)!] + reset(index.get(b)!);
  // Long jumps only ever get added, so this settles.
  for (;;) {
    for (let i = 0; i < order.length; i++) start[i + 1] = start[i] + reset(i) + order[i].stmts.length + termSize(order[i], i);
    let grew = false;
    for (let i = 0; i < order.length; i++) {
      const b = order[i];
      if (!isCond(b)) continue;
      const pc = start[i] + reset(i) + b.stmts.length;
      if (!longT[i] && at(b.jt!) - (pc + 1) > 255) { longT[i] = 1; grew = true; }
      if (!longF[i] && at(b.jf!) - (pc + 1) > 255) { longF[i] = 1; grew = true; }
    }
    if (!grew) break;
  }
  const last = start[order.length] - 1; // the final instruction, always a return
  const out: BpfInstruction[] = [];
  for (let i = 0; i < order.length; i++) {
    const b = order[i];
    if (resetBefore.has(i)) out.push({ code: GOTO, jt: 0, jf: 0, k: last - (out.length + 1) });
    for (const s of b.stmts) out.push({ code: s.code, jt: s.jt ?? 0, jf: s.jf ?? 0, k: s.k >>> 0 });
    const pc = out.length;
    if (isRet(b)) {
      out.push({ code: b.code, jt: 0, jf: 0, k: b.code === RET_A ? 0 : b.k >>> 0 });
    } else if (isGoto(b)) {
      const t = at(b.jt!);
      const r = b.jt!;
      // A jump to a bare return is as long as the return itself.
      if (t !== pc) out.push(isRet(r) && r.stmts.length === 0 ? { code: r.code, jt: 0, jf: 0, k: r.code === RET_A ? 0 : r.k >>> 0 } : { code: GOTO, jt: 0, jf: 0, k: t - (pc + 1) });
    } else {
      const t = at(b.jt!), f = at(b.jf!);
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

/** The scratch words a block stores on every path through it (local jumps open several). */
function storesOf(b: Block): number {
  const n = b.stmts.length;
  // arriving[i]: the words stored on every path reaching statement i by a local jump.
  const arriving: (number | undefined)[] = new Array(n + 1);
  let cur: number | undefined = 0;
  for (let i = 0; i < n; i++) {
    const a = arriving[i];
    cur = cur === undefined ? a : a === undefined ? cur : cur & a;
    if (cur === undefined) continue;
    const s = b.stmts[i];
    if (isLocalJump(s)) {
      for (const t of localTargets(s, i)) arriving[t] = arriving[t] === undefined ? cur : arriving[t]! & cur;
      cur = undefined;
    } else if (s.code === ST || s.code === STX) cur |= 1 << s.k;
  }
  const end = arriving[n];
  return cur === undefined ? end ?? 0 : end === undefined ? cur : cur & end;
}

/**
 * A topological order: Kahn's algorithm, preferring a goto's target, then the
 * input's order (a goto after its target's other predecessors; returns last).
 *
 * It also keeps the kernel's scratch-memory check happy. That check (Linux
 * check_load_and_stores, applied by validateProgram) follows the instructions in
 * order and, after a `ret`, lets the next instruction inherit the state the
 * `ret` saw, as if control could fall through it. So after a return, a block
 * from which a scratch word is read before being stored may only come if that
 * state knows the word is stored; the order prefers such blocks, and failing
 * that puts a never-executed `ja` to the last instruction in between (a jump
 * resets the inherited state).
 */
function layout(root: Block): { order: Block[]; resetBefore: Set<number> } {
  const ALL = 0xffff;
  const topo = topoOrder(root);
  linkPreds(topo);
  for (const b of topo) {
    b.waiting = b.preds.length;
    b.memMask = ALL;
  }
  root.memMask = 0;
  // Scratch words read later on some path before being stored (plain liveness: every read counts for the check).
  for (let i = topo.length - 1; i >= 0; i--) {
    const b = topo[i];
    b.memLive = liveBefore(b.stmts, (b.jt ? b.jt.memLive : 0) | (b.jf ? b.jf.memLive : 0)) & ALL;
  }
  const ready: Block[] = [root];
  const out: Block[] = [];
  const resetBefore = new Set<number>();
  let last: Block | null = null;
  let lastExit = 0;
  const release = (s: Block | null) => {
    if (s && --s.waiting === 0) ready.push(s);
  };
  // Returns go last. A goto goes after the other ways into its target, so that it
  // can fall through into it instead of needing a `ja`.
  const rank = (b: Block) => (isRet(b) ? 2 : isGoto(b) && b.jt!.waiting > 1 ? 1 : 0);
  const better = (a: Block, p: Block) => {
    const ka = rank(a), kp = rank(p);
    return ka < kp || (ka === kp && (a.pos < p.pos || (a.pos === p.pos && a.id < p.id)));
  };
  while (ready.length > 0) {
    // What flows into the next instruction without a jump: after a return (or a
    // goto to a bare return, which is emitted as that return), the state it saw.
    const retCopy = last !== null && isGoto(last) && isRet(last.jt!) && last.jt!.stmts.length === 0;
    const fall = last && (isRet(last) || retCopy) ? lastExit : ALL;
    const clean = (c: Block) => (fall & c.memLive) === c.memLive;
    let pick = -1;
    if (last && isGoto(last)) pick = ready.indexOf(last.jt!);
    if (pick < 0) {
      for (let i = 0; i < ready.length; i++) {
        if (!clean(ready[i])) continue;
        if (pick < 0 || better(ready[i], ready[pick])) pick = i;
      }
    }
    let entryFall = fall;
    if (pick < 0) {
      pick = 0;
      for (let i = 1; i < ready.length; i++) if (better(ready[i], ready[pick])) pick = i;
      resetBefore.add(out.length);
      entryFall = ALL;
    }
    const b = ready.splice(pick, 1)[0];
    if (last && isGoto(last)) {
      if (b === last.jt) entryFall = lastExit; // falls through: the state of the edge itself
      else if (!retCopy) last.jt!.memMask &= lastExit; // a `ja` is emitted
    }
    const entry = b.memMask & entryFall;
    lastExit = entry | storesOf(b);
    if (isCond(b)) {
      b.jt!.memMask &= lastExit;
      b.jf!.memMask &= lastExit;
    }
    out.push(b);
    last = b;
    release(b.jt);
    if (b.jf !== b.jt) release(b.jf);
  }
  return { order: out, resetBefore };
}
