// The classic-BPF optimizer: what `tcpdump` does by default and `tcpdump -O` turns off.
//
// WHAT IT TAKES AND GIVES. A valid classic BPF program (forward jumps only, ending
// in a return) — typically the code generator's straightforward output, which
// reloads the ethertype before every test, keeps every intermediate in scratch
// memory and tests `ip` three times over. It returns an equivalent program that is
// usually a third of the size, still valid under the kernel's rules (conditional
// offsets over 255 go through a `ja`, as libpcap does). A program that can accept
// nothing comes back as the single instruction `ret #0` (`rejectsAll` tells).
//
// HOW. The program is cut into basic blocks forming a DAG (optimize-cfg.ts). Then,
// until nothing changes (with a bound), each round runs one analysis and one kind
// of transformation:
//
//  1. Graph clean-up: a jump whose two targets are one block becomes a goto; edges
//     skip empty goto blocks; a goto into a block with no other way in absorbs it;
//     identical blocks merge (libpcap's intern_blocks, but inside the loop, so the
//     merges feed the other steps).
//  2. Value numbering over A, X and M[0..15] (optimize-values.ts), in topological
//     order: a block starts with the values its predecessors agree on (where they
//     disagree, a fresh unknown value for that block); statements are rewritten
//     with what is known — constants folded, `ld M[k]` of a constant becomes
//     `ld #k`, an operation with X constant takes the constant (`add x` →
//     `add #4`), `[x+k]` with X constant becomes `[k']`, a load of a value the
//     register already holds disappears, a value another register holds is
//     moved rather than recomputed, `tax` of a header length becomes `ldxb
//     4*([k]&0xf)`. A conditional jump is decided when its outcome is known: from
//     constants, or from the facts that the tests on every path into the block
//     established (the same test again, `A == 0x800` known so `A == 0x86dd` is
//     false, `A > 10` known so `A > 5` is true, ...). Facts survive merges of
//     paths even when the registers do not (a value that is A on every path but
//     was computed in different blocks keeps what each path knew of it).
//  3. Liveness over the atoms, then dead statements go — including dead packet
//     loads (see below) — and the rewrites that need to know a value dies: a
//     constant index folded into a load's offset (`ld #2; add x; tax; ldb [x+14]`
//     → `ldb [x+16]`, libpcap's tcp[k] case), and an operation folded into the
//     branch that consumes it (`sub #2; jeq #5` → `jeq #7`, `and #m; jeq #0` →
//     `jset #m` with the targets swapped).
//  4. Jump threading (libpcap's opt_j, BPF+'s predicate assertion propagation):
//     an edge P → S whose test the facts along that edge decide goes straight to
//     S's outcome, as long as what S computes is not needed there (checked value by
//     value against what the target reads); repeated down the chain.
//  5. Pull-ups (libpcap's or_pullup/and_pullup): in a chain of tests that all jump
//     to one place on success (an `or`), a test of the value A already holds is
//     moved to the front of the chain, where its reload is redundant; likewise for
//     `and` chains. libpcap does this; doing it too keeps the two programs alike.
//
// The first pass over the whole loop keeps redundant reloads (as libpcap's first
// loop does), since a block that reloads a value is easier to jump over than one
// that relies on a predecessor's register; a second pass then removes them.
// Finally the DAG is laid out (a goto's target placed right after it when possible)
// and emitted, with long jumps where needed.
//
// THE ONE DELIBERATE CHANGE OF BEHAVIOUR: DEAD LOADS. A load past the captured
// bytes makes classic BPF reject the packet, so a load is observable even when
// its value is not. libpcap's optimizer nevertheless removes loads whose value is
// dead or already known — `ld [26]; and #0` loses the load, a test whose two
// outcomes lead to the same place loses the load feeding it, a reordered `or`
// chain skips loads once a test succeeded — so on truncated packets tcpdump's
// optimized program accepts packets its unoptimized program rejects. Our compiler
// must agree with tcpdump in both modes, so this optimizer makes the same kind of
// decisions: a packet load disappears exactly when its value is dead, constant or
// already computed (or its test was reordered as libpcap reorders); a load whose
// value is used is never dropped, and nothing else about the verdict changes.
// In particular a division or modulo by X, which rejects the packet when X is 0,
// is never removed or moved (libpcap folds `0 / x` to 0; we do not).
//
// Cost: linear-ish work per round, a few dozen rounds; well under a millisecond
// for the usual expressions (bench/optimize.mjs).

import type { BpfInstruction } from '../bpf.js';
import {
  A, ABS, ALU, AND, BIT_A, BIT_X, Block, DIV, IMM, IND, JEQ, JGT, JSET, LD, LDX, LEN, LSH, MEM, MOD, MSH,
  N_ATOMS, RET, RET_A, RSH, SKF_AD_OFF, SRC_K, SRC_X, ST, STX, SUB, ADD, XOR, B, TAX, TXA, X,
  aluOp, blockDefs, blockLiveIn, buildCfg, cls, emit, isCond, isGoto, isRet, isTrap, isXSrc, linkPreds,
  makeGoto, makeRet, mode, normalize, replaceSucc, stmtDef, stmtUses, termUses, topoOrder,
  type Fact, type Stmt,
} from './optimize-cfg.js';
import { ValueTable } from './optimize-values.js';

/** Rounds per pass: far more than any program needs; a bound, not a tuning knob. */
const MAX_ROUNDS = 400;

/**
 * Returns an equivalent, usually much smaller program (see the essay above for what
 * "equivalent" means about loads whose value is dead). The result passes
 * validateProgram. A program that accepts nothing becomes `[ret #0]`.
 * Throws EBADPROG for a program that is not a valid forward-jumping BPF program.
 */
export function optimizeProgram(program: readonly BpfInstruction[]): BpfInstruction[] {
  let root = buildCfg(program).root;
  for (const keepReloads of [true, false]) {
    let pullups = 0;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const n = normalize(root);
      root = n.root;
      if (n.changed) continue;
      const ctx = new Pass(root, keepReloads);
      if (ctx.valueNumbering(true)) continue;
      ctx.liveness();
      if (ctx.deadCode()) continue;
      if (ctx.thread()) continue;
      if (pullups < 4 * ctx.order.length && ctx.pullup()) {
        pullups++;
        continue;
      }
      break;
    }
  }
  return emit(root);
}

/**
 * True when `program` accepts no packet as far as the optimizer can tell: the
 * optimizer reduces it to `ret #0` (libpcap reports "expression rejects all
 * packets" there). Constant time for a program that already is `[ret #0]`.
 */
export function rejectsAll(program: readonly BpfInstruction[]): boolean {
  const p = program.length === 1 ? program : optimizeProgram(program);
  return p.length === 1 && p[0].code === RET && p[0].k === 0;
}

// ---------------------------------------------------------------- one round

class Pass {
  readonly order: Block[];
  readonly vt = new ValueTable();

  constructor(
    readonly root: Block,
    /** First pass: keep loads of values a register already holds (see the essay). */
    readonly keepReloads: boolean,
  ) {
    this.order = topoOrder(root);
    linkPreds(this.order);
  }

  // ---------------------------------------------------------------- values and facts

  /**
   * Numbers the values of every block in topological order and, if `alter`,
   * rewrites statements and decides branches as it goes (rewrites keep every
   * atom's value, so the numbering stays true for the new code). Returns whether
   * anything changed.
   */
  valueNumbering(alter: boolean): boolean {
    const { vt } = this;
    let changed = false;
    for (const b of this.order) b.reached = false;
    for (const b of this.order) {
      const preds = b.preds.filter((p) => p.reached && (p.jt === b || p.jf === b));
      if (b !== this.root && preds.length === 0) continue; // cut off by a decision this round
      b.reached = true;
      b.preds = preds;
      this.enter(b);
      const V = b.entry.slice();
      if (alter) changed = this.rewrite(b, V) || changed;
      else simulate(vt, b.stmts, V);
      b.exit = V;
      if (isCond(b)) {
        if (alter && isXSrc(b.code)) {
          const xc = vt.constant(V[X]);
          if (xc !== undefined) {
            b.code &= ~SRC_X;
            b.k = xc;
            changed = true;
          }
        }
        if (alter) {
          const d = vt.decide(b.code & 0xf0, V[A], this.operand(b, V), b.facts);
          if (d !== undefined) {
            makeGoto(b, d ? b.jt! : b.jf!);
            changed = true;
          }
        }
      } else if (alter && b.code === RET_A) {
        const c = vt.constant(V[A]);
        if (c !== undefined) {
          makeRet(b, RET, c);
          changed = true;
        }
      }
    }
    return changed;
  }

  /** The value a conditional jump compares A with. */
  private operand(b: Block, V: number[]): number {
    return isXSrc(b.code) ? V[X] : this.vt.konst(b.k);
  }

  /** The facts on p's true (`t`) or false side: p's own, plus what its test established. */
  private sideFacts(p: Block, t: boolean): Fact | null {
    return { op: p.code & 0xf0, a: p.exit[A], o: this.operand(p, p.exit), t, next: p.facts };
  }

  /** Sets b.entry and b.facts from its predecessors' exits. */
  private enter(b: Block): void {
    const { vt } = this;
    const preds = b.preds;
    if (preds.length === 0) {
      // The root: scratch memory is unset, A and X start at 0.
      b.entry = [];
      for (let i = 0; i < 16; i++) b.entry.push(vt.undef(i));
      b.entry.push(vt.konst(0), vt.konst(0));
      b.facts = null;
      return;
    }
    const entry = preds[0].exit.slice();
    const phis: number[] = [];
    for (let i = 0; i < N_ATOMS; i++) {
      for (let j = 1; j < preds.length; j++) {
        if (preds[j].exit[i] !== entry[i]) {
          entry[i] = vt.phi(b.id, i);
          phis.push(i);
          break;
        }
      }
    }
    b.entry = entry;
    if (preds.length === 1) {
      b.facts = this.edgeFacts(preds[0], b, phis);
      return;
    }
    // Keep what every incoming edge knows.
    const lists = preds.map((p) => this.edgeFacts(p, b, phis));
    let out: Fact | null = null;
    const sets = lists.slice(1).map((l) => {
      const set = new Set<number>();
      for (let f = l; f; f = f.next) set.add(factKey(f));
      return set;
    });
    for (let f = lists[0]; f; f = f.next) {
      const key = factKey(f);
      if (sets.every((set) => set.has(key))) out = { op: f.op, a: f.a, o: f.o, t: f.t, next: out };
    }
    b.facts = out;
  }

  /** What is known on the edge p → b, restated for b's merged (phi) values too. */
  private edgeFacts(p: Block, b: Block, phis: number[]): Fact | null {
    let facts = isCond(p) && p.jt !== p.jf ? this.sideFacts(p, p.jt === b) : p.facts;
    if (phis.length === 0) return facts;
    let extra = facts;
    for (const i of phis) {
      const w = p.exit[i];
      const phi = b.entry[i];
      for (let f = facts; f; f = f.next) if (f.a === w) extra = { op: f.op, a: phi, o: f.o, t: f.t, next: extra };
    }
    return extra;
  }

  /** Rewrites b's statements given the values V on entry (updated to the exit). */
  private rewrite(b: Block, V: number[]): boolean {
    const { vt } = this;
    let changed = false;
    const out: Stmt[] = [];
    for (const s of b.stmts) {
      let code = s.code, k = s.k;
      // Operands that are known constants become immediates.
      if (cls(code) === LD && mode(code) === IND) {
        const xc = vt.constant(V[X]);
        if (xc !== undefined && xc + k < SKF_AD_OFF) {
          code = LD | (code & 0x18) | ABS;
          k = xc + k;
        }
      } else if (cls(code) === ALU && isXSrc(code)) {
        const xc = vt.constant(V[X]);
        const op = aluOp(code);
        if (xc !== undefined) {
          if ((op === DIV || op === MOD) && xc === 0) {
            // Always rejects from here on: the rest of the block is a `ret #0`.
            b.stmts = out;
            makeRet(b, RET, 0);
            return true;
          }
          if ((op === LSH || op === RSH) && xc >= 32) {
            code = LD | IMM;
            k = 0;
          } else {
            code = ALU | op | SRC_K;
            k = xc;
          }
        }
      }
      const cand: Stmt = { code, k };
      const def = stmtDef(cand);
      const v = evalStmt(vt, cand, V)!;
      const chosen = this.choose(cand, def, v, V);
      if (chosen === null) changed = true;
      else {
        if (chosen.code !== s.code || chosen.k !== s.k) changed = true;
        out.push(chosen);
      }
      V[def] = v;
    }
    b.stmts = out;
    return changed;
  }

  /** The cheapest statement that gives atom `def` the value `v` (null: it already has it). */
  private choose(s: Stmt, def: number, v: number, V: number[]): Stmt | null {
    const { vt } = this;
    const reloads = !this.keepReloads;
    if (isTrap(s)) return s;
    const c = vt.constant(v);
    if (def === A) {
      if (reloads && V[A] === v) return null;
      if (c !== undefined) return s.code === (LD | IMM) && s.k === c ? s : { code: LD | IMM, k: c };
      if (reloads && s.code !== TXA && V[X] === v) return { code: TXA, k: 0 };
      if (reloads && cls(s.code) === ALU) {
        for (let j = 0; j < 16; j++) if (V[j] === v) return { code: LD | MEM, k: j };
      }
      return s;
    }
    if (def === X) {
      if (reloads && V[X] === v) return null;
      if (c !== undefined) return s.code === (LDX | IMM) && s.k === c ? s : { code: LDX | IMM, k: c };
      if (s.code === TAX || s.code === (LDX | MEM)) {
        const off = vt.mshOffset(v);
        if (off !== undefined) return { code: LDX | B | MSH, k: off };
        if (vt.isLen(v)) return { code: LDX | LEN, k: 0 };
        if (reloads && s.code !== TAX && V[A] === v) return { code: TAX, k: 0 };
      }
      return s;
    }
    if (reloads && V[def] === v) return null;
    return s;
  }

  // ---------------------------------------------------------------- liveness and dead code

  /** Live atoms into and out of every reached block (the graph is a DAG: one backward sweep). */
  liveness(): void {
    for (let i = this.order.length - 1; i >= 0; i--) {
      const b = this.order[i];
      if (!b.reached) continue;
      b.liveOut = (b.jt ? b.jt.liveIn : 0) | (b.jf ? b.jf.liveIn : 0);
      b.liveIn = blockLiveIn(b, b.liveOut);
    }
  }

  /** Removes dead statements (dead packet loads included) and applies the rewrites that need liveness. */
  deadCode(): boolean {
    let changed = false;
    for (const b of this.order) {
      if (!b.reached) continue;
      let live = b.liveOut | termUses(b);
      const keep: Stmt[] = [];
      for (let i = b.stmts.length - 1; i >= 0; i--) {
        const s = b.stmts[i];
        const d = 1 << stmtDef(s);
        if ((live & d) === 0 && !isTrap(s)) {
          changed = true;
          continue;
        }
        live = (live & ~d) | stmtUses(s);
        keep.push(s);
      }
      if (keep.length !== b.stmts.length) b.stmts = keep.reverse();
      changed = this.foldIndex(b) || changed;
      changed = foldIntoBranch(b) || changed;
    }
    return changed;
  }

  /**
   * `tax; ld [x+k]` where X = base + c and X held `base` before the `tax`: drop the
   * `tax` and load [x+(k+c)] (when nothing else reads the new X and no sum can wrap).
   */
  private foldIndex(b: Block): boolean {
    const { vt } = this;
    const n = b.stmts.length;
    if (n < 2) return false;
    const xBefore: number[] = new Array(n);
    const V = b.entry.slice();
    for (let i = 0; i < n; i++) {
      xBefore[i] = V[X];
      const v = evalStmt(vt, b.stmts[i], V);
      if (v === undefined) return false;
      V[stmtDef(b.stmts[i])] = v;
    }
    // X read after each statement (before being redefined)?
    const xLiveAfter: boolean[] = new Array(n);
    let liveX = ((b.liveOut | termUses(b)) & BIT_X) !== 0;
    for (let i = n - 1; i >= 0; i--) {
      xLiveAfter[i] = liveX;
      const s = b.stmts[i];
      if (stmtDef(s) === X) liveX = false;
      if (stmtUses(s) & BIT_X) liveX = true;
    }
    for (let i = 1; i < n; i++) {
      const s = b.stmts[i];
      if (cls(s.code) !== LD || mode(s.code) !== IND || xLiveAfter[i]) continue;
      const ad = vt.addend(xBefore[i]);
      if (!ad || s.k + ad.c > 0xffffffff) continue;
      // The value numbering only equates the two loads when no sum can wrap.
      if (vt.load(s.code, s.k + ad.c, ad.base) !== vt.load(s.code, s.k, xBefore[i])) continue;
      let j = i - 1;
      while (j >= 0 && stmtDef(b.stmts[j]) !== X) j--;
      if (j < 0 || b.stmts[j].code !== TAX || xBefore[j] !== ad.base) continue;
      let readsX = false;
      for (let m = j + 1; m < i; m++) if (stmtUses(b.stmts[m]) & BIT_X) readsX = true;
      if (readsX) continue;
      b.stmts[i] = { code: s.code, k: s.k + ad.c };
      b.stmts.splice(j, 1);
      return true;
    }
    return false;
  }

  // ---------------------------------------------------------------- jump threading

  /**
   * For every edge P → S (blocks in reverse topological order, so what P knows is
   * still exact when P is handled): while the facts on the edge decide S's test,
   * and S computes nothing its outcome T reads differently from what P leaves,
   * make the edge go to T.
   */
  thread(): boolean {
    const { vt } = this;
    let changed = false;
    for (let i = this.order.length - 1; i >= 0; i--) {
      const p = this.order[i];
      if (!p.reached || isRet(p)) continue;
      let moved = false;
      for (const side of isGoto(p) ? [true] : [true, false]) {
        const facts = isGoto(p) ? p.facts : this.sideFacts(p, side);
        const start = side ? p.jt! : p.jf!;
        let s = start;
        for (let guard = 0; guard < 4096 && !isRet(s); guard++) {
          const sim = p.exit.slice();
          if (!simulate(vt, s.stmts, sim)) break;
          let t: Block;
          if (isGoto(s)) t = s.jt!;
          else {
            const d = vt.decide(s.code & 0xf0, sim[A], isXSrc(s.code) ? sim[X] : vt.konst(s.k), facts);
            if (d === undefined) break;
            t = d ? s.jt! : s.jf!;
          }
          if (!sameOn(t.liveIn, sim, p.exit)) break;
          s = t;
        }
        if (s !== start) {
          if (side) p.jt = s;
          else p.jf = s;
          if (isGoto(p)) p.jf = s;
          moved = true;
        }
      }
      if (moved) {
        changed = true;
        if (isCond(p) && p.jt === p.jf) makeGoto(p, p.jt!);
        p.liveOut = p.jt!.liveIn | p.jf!.liveIn;
        p.liveIn = blockLiveIn(p, p.liveOut);
      }
    }
    return changed;
  }

  // ---------------------------------------------------------------- pull-ups

  /** One or_pullup/and_pullup step (see tryPullup); true if the graph changed. */
  pullup(): boolean {
    for (const b of this.order) {
      if (!b.reached || !isCond(b) || b.preds.length === 0) continue;
      if (this.tryPullup(b, true) || this.tryPullup(b, false)) return true;
    }
    return false;
  }

  /**
   * In a chain of tests starting at b that all jump to one block on one side
   * (`common`: true for an `or` chain, false for an `and` chain) and continue on
   * the other, with A holding `val` on entry: past the leading tests of `val`,
   * find the first test D of something else, then the next test S of `val`
   * further down, and move S in front of D. S then reloads a value A already
   * holds. Only tests whose sole way in is the chain are touched, S must compute
   * nothing but A, and no block after the move may read a register differently.
   */
  private tryPullup(b: Block, orChain: boolean): boolean {
    const common = (d: Block) => (orChain ? d.jt : d.jf);
    const next = (d: Block) => (orChain ? d.jf! : d.jt!);
    const setNext = (d: Block, to: Block) => {
      if (orChain) d.jf = to;
      else d.jt = to;
    };
    const target = common(b);
    const val = b.preds[0].exit[A];
    for (const p of b.preds) if (p.exit[A] !== val) return false;
    const inChain = (d: Block, from: Block | null) =>
      isCond(d) && d.reached && common(d) === target && (from === null || (d.preds.length === 1 && d.preds[0] === from && common(from) !== d));

    let prev: Block | null = null;
    let d = b;
    for (;;) {
      if (!inChain(d, prev)) return false;
      if (d.exit[A] !== val) break;
      prev = d;
      d = next(d);
    }
    let between = blockDefs(d) & ~BIT_A;
    let sprev = d;
    let s = next(d);
    for (;;) {
      if (!inChain(s, sprev)) return false;
      if (s.exit[A] === val) break;
      between |= blockDefs(s) & ~BIT_A;
      sprev = s;
      s = next(s);
    }
    if ((blockDefs(s) & ~BIT_A) !== 0 || s.stmts.some(isTrap)) return false;
    if (isXSrc(s.code) && s.entry[X] !== d.entry[X]) return false;
    const sim = d.entry.slice();
    if (!simulate(this.vt, s.stmts, sim) || sim[A] !== val) return false;
    if (next(s).liveIn & BIT_A) return false;
    if (target!.liveIn & between) return false;

    setNext(sprev, next(s));
    setNext(s, d);
    if (prev) setNext(prev, s);
    else for (const p of b.preds) replaceSucc(p, b, s);
    return true;
  }
}

// ---------------------------------------------------------------- helpers

/** The value a statement gives its destination, or undefined if it always rejects (division by X = 0). */
function evalStmt(vt: ValueTable, s: Stmt, V: number[]): number | undefined {
  const c = s.code;
  switch (cls(c)) {
    case LD:
      switch (mode(c)) {
        case ABS: return vt.load(c, s.k, -1);
        case IND: return vt.load(c, s.k, V[X]);
        case LEN: return vt.len();
        case IMM: return vt.konst(s.k);
        default: return V[s.k]; // MEM
      }
    case LDX:
      switch (mode(c)) {
        case IMM: return vt.konst(s.k);
        case MEM: return V[s.k];
        case LEN: return vt.len();
        default: return vt.msh(s.k); // MSH
      }
    case ST: return V[A];
    case STX: return V[X];
    case ALU: {
      const op = aluOp(c);
      if (op === 0x80) return vt.neg(V[A]);
      if (!isXSrc(c)) return vt.alu(op, V[A], vt.konst(s.k));
      if ((op === DIV || op === MOD) && vt.constant(V[X]) === 0) return undefined;
      return vt.alu(op, V[A], V[X]);
    }
    default:
      return c === TAX ? V[A] : V[X];
  }
}

/** Runs statements symbolically over V; false if they always reject. */
function simulate(vt: ValueTable, stmts: readonly Stmt[], V: number[]): boolean {
  for (const s of stmts) {
    const v = evalStmt(vt, s, V);
    if (v === undefined) return false;
    V[stmtDef(s)] = v;
  }
  return true;
}

/** True if V1 and V2 agree on every atom in `atoms`. */
function sameOn(atoms: number, V1: number[], V2: number[]): boolean {
  for (let i = 0; i < N_ATOMS; i++) if (atoms & (1 << i) && V1[i] !== V2[i]) return false;
  return true;
}

/** A number naming a fact (value numbers stay far below 2^21). */
function factKey(f: Fact): number {
  return ((f.a * 2097152 + f.o) * 8 + (f.op >> 4)) * 2 + (f.t ? 1 : 0);
}

/**
 * When A dies at the branch, fold the block's last operation into the test:
 * `sub #c; jeq #d` → `jeq #(d+c)`, `add #c`/`xor #c` likewise, `sub x; jeq #0` →
 * `jeq x`, `and #m; jeq #0` → `jset #m` (targets swapped), `and #m; jgt #0` →
 * `jset #m`, `and #bit; jeq #bit` → `jset #bit`.
 */
function foldIntoBranch(b: Block): boolean {
  if (!isCond(b) || b.stmts.length === 0 || (b.liveOut & BIT_A) !== 0) return false;
  const s = b.stmts[b.stmts.length - 1];
  if (cls(s.code) !== ALU || isXSrc(b.code)) return false;
  const op = b.code & 0xf0;
  const k = b.k;
  const sop = aluOp(s.code);
  const sx = isXSrc(s.code);
  let code = -1, nk = 0, swap = false;
  if (op === JEQ && !sx && sop === SUB) { code = b.code; nk = (k + s.k) >>> 0; }
  else if (op === JEQ && !sx && sop === ADD) { code = b.code; nk = (k - s.k) >>> 0; }
  else if (op === JEQ && !sx && sop === XOR) { code = b.code; nk = (k ^ s.k) >>> 0; }
  else if (op === JEQ && sx && (sop === SUB || sop === XOR) && k === 0) { code = 0x05 | JEQ | SRC_X; }
  else if (op === JEQ && sop === AND && k === 0) { code = 0x05 | JSET | (sx ? SRC_X : SRC_K); nk = sx ? 0 : s.k; swap = true; }
  else if (op === JGT && sop === AND && !sx && k === 0) { code = 0x05 | JSET; nk = s.k; }
  else if (op === JEQ && sop === AND && !sx && k === s.k && k !== 0 && (k & (k - 1)) === 0) { code = 0x05 | JSET; nk = k; }
  if (code < 0) return false;
  b.stmts.pop();
  b.code = code;
  b.k = nk;
  if (swap) [b.jt, b.jf] = [b.jf, b.jt];
  return true;
}
