// The classic-BPF optimizer: what `tcpdump` does by default and `tcpdump -O` turns off.
//
// WHAT IT TAKES AND GIVES. A valid classic BPF program (forward jumps only, ending
// in a return) — typically the code generator's straightforward output, which
// reloads the ethertype before every test, keeps every intermediate in scratch
// memory and tests `ip` three times over. It returns an equivalent program, usually
// a third of the size and on the whole a little smaller than libpcap's, still valid
// under the kernel's rules (a conditional offset over 255 goes through a `ja`, as
// libpcap does; see also the layout note in optimize-cfg.ts). A program that can
// accept nothing comes back as the single instruction `ret #0` (`rejectsAll`).
//
// WHY IT IS SHAPED LIKE LIBPCAP'S. Our compiler must agree with tcpdump packet for
// packet with the optimizer on, and libpcap's optimizer changes what a program
// does on truncated packets (below). Which loads it drops depends on which
// branches it manages to decide and merge; an optimizer that decided more would
// drop more loads and accept more truncated packets than tcpdump (and would call
// filters "rejects all packets" that tcpdump compiles). So this one decides
// exactly the branches libpcap's would, in the same two phases, and is free only
// in how it cleans up statements and lays out code.
//
// HOW. The program is cut into basic blocks forming a DAG (optimize-cfg.ts). Each
// round runs one analysis and one kind of transformation, until a pass finds
// nothing (with a bound). Two passes, mirroring libpcap's two loops:
//
//  Pass 1 — branches (libpcap's first loop: opt_j, or_pullup, and_pullup).
//   - Value numbering (optimize-values.ts) "as written": the same computation
//     gets the same number wherever it happens, but `[x+14]` with X = 6 is not
//     `[20]` and `#2 + #3` is not 5; only `ld #k` makes a constant. Statements are
//     not rewritten.
//   - Facts: the test outcomes on the edges that every path into a block went
//     through (libpcap's edge dominators). A test is decided by a constant A
//     (`jset #0` too), or, along an edge, by the very same test on such an edge or
//     a known `A == c` against another `jeq #d` — and nothing else (not
//     `A == 0x800` ⇒ `A > 1500`, not `x == x`), as in libpcap's fold_edge.
//   - Jump threading: an edge P → S whose facts decide S's test goes straight to
//     S's outcome, if what S computes is not needed there (checked value by value
//     against what the target reads), repeatedly down the chain. It runs after
//     the branch folds below, as opt_j after opt_peep: `and #1; jeq #0` has become
//     `jset #1` by then, and is no longer "another `jeq`".
//   - Pull-ups: in a chain of tests that all jump to one place on success (an
//     `or`; an `and` likewise on failure), a later test of the value A already
//     holds is moved up, where its reload is redundant (`host a or host b` tests
//     [26] twice, then [30] twice). libpcap does it; so must we.
//  Pass 2 — statements (libpcap's second loop; branches move no more).
//   - Canonical value numbering: constants folded, operands ordered,
//     `x - c` is `x + -c`, `[x+k]` with X = base + c is `[base + (k+c)]`,
//     `ldxb 4*([k]&0xf)` is `(ldb [k] & 0xf) << 2`.
//   - Statements rewritten with what is known: a value the atom already holds is
//     not reloaded (unless merging paths left it there: libpcap then knows no value
//     and reloads); a constant becomes `ld #k`/`ldx #k`; an operand X that is a
//     constant becomes `#k`; `[x+k]` with X constant becomes `[k']`; otherwise the
//     cheapest source: something that reads no register (`ld len`, a packet
//     location already read), then a register move, then a scratch word; `tax`
//     of a header length becomes `ldxb 4*([k]&0xf)`. A constant A settles a test
//     (both sides lead to the outcome), but the test keeps its place, so the
//     tests before it and the loads feeding them stay, as in tcpdump's program.
//   - `ld #c; add x; tax; ld [x+k]` folds c into the offset (libpcap's tcp[k]
//     peephole, checked by value: no sum may wrap).
//   - A block that leaves A and X as it found them, while nothing after it reads
//     anything, loses its statements (libpcap's opt_blk does the same).
//  Both passes: dead statements go, dead packet loads included (liveness over A,
//  X, M[0..15]), and an operation whose result only feeds an equality test folds
//  into it (`sub #2; jeq #5` → `jeq #7`, `and #m; jeq #0` → `jset #m` swapped, as
//  libpcap's opt_peep). Between rounds the graph is cleaned: in pass 1 a test
//  whose two sides lead to one block becomes a goto (not the root's); edges skip
//  empty blocks; a goto absorbs a target it alone reaches; in pass 2 identical
//  blocks merge (libpcap's intern_blocks, which runs after its loops: the tests
//  whose sides that makes agree are not jumped around, nor their loads dropped).
//  Jumps that the code generator put inside a block (the live VLAN id test's) stay
//  statements of that block, as in libpcap's optimizer (optimize-cfg.ts).
//  Finally the settled tests that libpcap could not jump around (those of pass 2,
//  and the root's, which nothing jumps to) go, but their packet loads stay
//  (libpcap's opt_root for the root), and the DAG is laid out — a goto's target
//  right after it, libpcap's long jumps where an offset exceeds 255.
//
// THE ONE DELIBERATE CHANGE OF BEHAVIOUR: DEAD LOADS. A load past the captured
// bytes makes classic BPF reject the packet, so a load is observable even when
// its value is not. libpcap's optimizer nevertheless removes loads whose value is
// dead or known — `ld [26]; and #0` loses the load, a test whose two outcomes lead
// to the same place loses the load feeding it, a reordered `or` chain skips loads
// once a test has succeeded — so on truncated packets tcpdump's optimized program
// accepts packets its unoptimized program rejects. This optimizer does the same,
// and only that: a packet load disappears exactly when its value is dead, constant
// or already computed (or its test was reordered as libpcap reorders); a load
// whose value is used is never dropped, and nothing else about the verdict
// changes. In particular a division or modulo by X, which rejects the packet when
// X is 0, is never dropped, skipped or moved unless X is known not to be 0
// (libpcap folds `0 / x` to 0 and drops unused divisions; we do not).
//
// Cost: well under a millisecond for the usual expressions, a few milliseconds for
// filters of thousands of instructions (bench/optimize.mjs).

import type { BpfInstruction } from '../bpf.js';
import {
  A, ABS, ALU, AND, BIT_A, BIT_X, Block, DIV, IMM, IND, JEQ, JGT, JSET, LD, LDX, LEN, LSH, MEM, MOD, MSH,
  N_ATOMS, RET, RET_A, RSH, SKF_AD_OFF, SRC_K, SRC_X, ST, STX, SUB, ADD, XOR, B, TAX, TXA, X,
  aluOp, blockLiveIn, buildCfg, cls, dropStmts, emit, hasLocalJump, isCond, isGoto, isLocalJump, isRet, isTrap, isXSrc,
  liveBefore, localTargets, makeGoto, makeRet, mode, normalize, replaceSucc, stmtDef, stmtUses, termUses, topoOrder,
  type Fact, type Stmt,
} from './optimize-cfg.js';
import { ValueTable } from './optimize-values.js';

/** Rounds per pass: far more than any program needs; a bound, not a tuning knob. */
const MAX_ROUNDS = 400;

/** What the optimizer may be told about a program made by netpd's code generator. */
export interface OptimizeOptions {
  /**
   * The jumps (by index) that lie inside one of the code generator's blocks
   * (emitProgram's localJumps): they stay statements of their block, as libpcap's
   * optimizer keeps its "jumps in the middle of a block" (optimize-cfg.ts).
   */
  localJumps?: ReadonlySet<number>;
  /**
   * Assume nothing about A and X on entry, as libpcap's optimizer does. Otherwise
   * they are 0, as the kernel and netpd's interpreter start them, and an `ld #0` at
   * the top (libpcap's live VLAN code has one) is dropped where tcpdump keeps it.
   */
  unknownOnEntry?: boolean;
}

/**
 * Returns an equivalent, usually much smaller program (see the essay above for what
 * "equivalent" means about loads whose value is dead). The result passes
 * validateProgram. A program that accepts nothing becomes `[ret #0]`.
 * Throws EBADPROG for a program that is not a valid forward-jumping BPF program.
 */
export function optimizeProgram(program: readonly BpfInstruction[], options: OptimizeOptions = {}): BpfInstruction[] {
  let root = buildCfg(program, options.localJumps);
  const vt = new ValueTable();
  for (const first of [true, false]) {
    let pullups = 0;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const n = normalize(root, first);
      root = n.root;
      if (n.changed) continue;
      vt.reset(!first);
      const ctx = new Pass(root, n.order, first, vt, options.unknownOnEntry === true);
      if (ctx.valueNumbering()) continue;
      ctx.liveness();
      if (ctx.deadCode()) continue;
      if (first) {
        if (ctx.thread()) continue;
        if (pullups < 4 * ctx.order.length && ctx.pullup()) {
          pullups++;
          continue;
        }
      } else if (ctx.foldIndexes()) continue;
      break;
    }
  }
  const out = emit(dropSettledTests(root));
  // Long jumps can make a program with thousands of jump targets longer than it was,
  // even past the kernel's 4096 instructions: then the input, equivalent and valid, is the answer.
  return out.length > program.length ? program.map((ins) => ({ code: ins.code, jt: ins.jt, jf: ins.jf, k: ins.k })) : out;
}

/**
 * The tests whose two sides lead to one place, and what libpcap keeps of them.
 *
 * libpcap jumps around such a test (and with it the loads that fed it) only in its
 * first loop, and never around the root's: nothing jumps to the root. A test
 * settled in the second loop, where branches no longer move (`1 + 2 = 3` is only
 * folded there), or the root's, stays in tcpdump's program to the end, and so do
 * the tests before it, with their loads. So the passes leave such tests in place,
 * and here each becomes a goto that keeps its packet loads (they decide whether a
 * short packet is rejected) but not its other dead statements. Nothing is merged
 * or jumped around afterwards: the tests before it keep both their sides, as in
 * tcpdump's program (which is also why a filter tcpdump compiles never turns
 * into `ret #0` here).
 *
 * The root follows libpcap's opt_root: if the root's test was settled, libpcap
 * follows the settled tests from it to the first block that is not one, and runs
 * the root's statements and then that block's (the ones in between are lost);
 * if that block is a return, nothing runs before it.
 */
function dropSettledTests(root: Block): Block {
  const settled = (b: Block) => isCond(b) && b.jt === b.jf;
  if (settled(root)) {
    let end = root.jt!;
    const between: Stmt[] = [];
    while (settled(end) || isGoto(end)) { // (a goto is such a test in libpcap's terms)
      for (const s of end.stmts) between.push(s);
      end = end.jt!;
    }
    // `end` is reached only through this chain (anything else reaching it would come
    // after the root). What libpcap loses, we lose too, except what the verdict
    // needs: a division by X, and what a `ret a` returns.
    if (isRet(end)) {
      const mid = keepFor(between.concat(end.stmts), termUses(end), false);
      end.stmts = keepFor(root.stmts, stmtsLiveIn(mid, termUses(end)), false).concat(mid);
    } else {
      const after = stmtsLiveIn(end.stmts, liveInto(end));
      const mid = keepFor(between, after, false);
      end.stmts = keepFor(root.stmts, stmtsLiveIn(mid, after), true).concat(mid, end.stmts);
    }
    root = end;
  }
  const order = topoOrder(root);
  for (let i = order.length - 1; i >= 0; i--) {
    const b = order[i];
    b.liveOut = (b.jt ? b.jt.liveIn : 0) | (b.jf ? b.jf.liveIn : 0);
    if (settled(b)) {
      makeGoto(b, b.jt!);
      b.stmts = keepFor(b.stmts, b.liveOut, true);
    }
    b.liveIn = stmtsLiveIn(b.stmts, b.liveOut | termUses(b));
  }
  return root;
}

/** The statements of `stmts` that produce something in `live` (divisions by X, local jumps, and packet loads if `pinLoads`, always stay). */
function keepFor(stmts: Stmt[], live: number, pinLoads: boolean): Stmt[] {
  const keep = new Array<boolean>(stmts.length).fill(true);
  liveBefore(stmts, live, (j, after) => {
    const s = stmts[j];
    const load = (cls(s.code) === LD && (mode(s.code) === ABS || mode(s.code) === IND)) || s.code === (LDX | B | MSH);
    keep[j] = (after & (1 << stmtDef(s))) !== 0 || (pinLoads && load) || isTrap(s);
    return keep[j];
  });
  return dropStmts(stmts, keep);
}

/** Plain liveness through statements: every statement's reads count (a load kept for its effect still reads X). */
function stmtsLiveIn(stmts: Stmt[], live: number): number {
  return liveBefore(stmts, live);
}

/** The atoms read after block b (plain liveness over everything reachable from it). */
function liveInto(b: Block): number {
  const order = topoOrder(b);
  for (let i = order.length - 1; i >= 1; i--) {
    const c = order[i];
    c.liveIn = stmtsLiveIn(c.stmts, (c.jt ? c.jt.liveIn : 0) | (c.jf ? c.jf.liveIn : 0) | termUses(c));
  }
  return (b.jt ? b.jt.liveIn : 0) | (b.jf ? b.jf.liveIn : 0) | termUses(b);
}

/**
 * True when `program` accepts no packet as far as the optimizer can tell: the
 * optimizer reduces it to `ret #0` (libpcap reports "expression rejects all
 * packets" there). Constant time for a program that is a single `ret #k`.
 */
export function rejectsAll(program: readonly BpfInstruction[]): boolean {
  const p = program.length === 1 && program[0].code === RET ? program : optimizeProgram(program);
  return p.length === 1 && p[0].code === RET && p[0].k === 0;
}

// ---------------------------------------------------------------- one round

class Pass {
  /** Scratch for intersecting fact lists (see enter). */
  private readonly seen = new Map<number, number>();
  private stamp = 0;

  constructor(
    readonly root: Block,
    /** The reachable blocks in topological order, predecessors linked. */
    readonly order: Block[],
    /**
     * The first pass (libpcap's first loop): values numbered as written, statements
     * left alone, branches decided and moved. The second (its second loop):
     * values numbered canonically, statements simplified, branches decided only by
     * constants.
     */
    readonly first: boolean,
    /** Value numbers for this round (numbering literally in the first pass, canonically in the second). */
    readonly vt: ValueTable,
    /** A and X hold unknown values on entry (OptimizeOptions.unknownOnEntry). */
    readonly unknownOnEntry: boolean,
  ) {}

  // ---------------------------------------------------------------- values and facts

  /**
   * Numbers the values of every block in topological order, deciding the tests a
   * constant decides and (in the second pass) rewriting statements as it goes; rewrites keep every
   * atom's value, so the numbering stays true for the new code. Returns whether
   * anything changed.
   */
  valueNumbering(): boolean {
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
      // Statements around local jumps are left as they are (their values still count).
      if (this.first || hasLocalJump(b)) simulate(vt, b.stmts, V, b.id);
      else changed = this.rewrite(b, V) || changed;
      b.exit = V;
      b.outFacts = b.stmts.some(isTrap) ? this.walk(b, b.entry.slice(), b.facts).facts : b.facts;
      if (isCond(b)) {
        if (isXSrc(b.code)) {
          const xc = vt.constant(V[X]);
          if (xc !== undefined) {
            b.code &= ~SRC_X;
            b.k = xc;
            changed = true;
          }
        }
        // Constants only: what the facts decide, threading decides per edge, after the
        // branch folds of deadCode (as libpcap's opt_j runs after opt_peep).
        const d = vt.decide(b.code & 0xf0, V[A], this.operand(b, V), null);
        if (d !== undefined) {
          const to = d ? b.jt! : b.jf!;
          if (this.first && b !== this.root) {
            makeGoto(b, to);
            changed = true;
          } else if (b.jt !== b.jf) {
            b.jt = b.jf = to; // the test stays for now (see dropSettledTests)
            changed = true;
          }
        }
      } else if (b.code === RET_A) {
        const c = vt.constant(V[A]);
        if (c !== undefined) {
          makeRet(b, RET, c);
          changed = true;
        }
      }
    }
    return changed;
  }

  /**
   * Runs statements symbolically from V (updated) under `facts`: which of them
   * are divisions by an X that may be 0 (`unsafe`: the packet could be rejected
   * there, which matters only if it could still be accepted later — `canAccept`,
   * from the last liveness sweep), the facts after them (each division that
   * passed proves its X was not 0), and whether they always reject (a division
   * by a known 0).
   */
  private walk(b: Block, V: number[], facts: Fact | null, canAccept = true): { unsafe: boolean[]; facts: Fact | null; rejects: boolean } {
    const { vt } = this;
    const stmts = b.stmts;
    const unsafe: boolean[] = new Array(stmts.length).fill(false);
    if (!stmts.some(isTrap)) return { unsafe, facts, rejects: !simulate(vt, stmts, V, b.id) };
    if (hasLocalJump(b)) {
      // Paths inside the block: any division may reject, and none proves anything.
      stmts.forEach((s, i) => { unsafe[i] = isTrap(s) && canAccept; });
      return { unsafe, facts, rejects: !simulate(vt, stmts, V, b.id) };
    }
    for (let i = 0; i < stmts.length; i++) {
      const s = stmts[i];
      if (isTrap(s) && vt.decide(JEQ, V[X], vt.konst(0), facts) !== false) {
        unsafe[i] = canAccept;
        facts = { op: JEQ, a: V[X], o: vt.konst(0), t: false, origin: trapOrigin(b, i), next: facts };
      }
      const v = evalStmt(vt, s, V);
      if (v === undefined) return { unsafe, facts, rejects: true };
      V[stmtDef(s)] = v;
    }
    return { unsafe, facts, rejects: false };
  }

  /** The value a conditional jump compares A with. */
  private operand(b: Block, V: number[]): number {
    return isXSrc(b.code) ? V[X] : this.vt.konst(b.k);
  }

  /** The facts on p's true (`t`) or false side: p's own, plus what its test established. */
  private sideFacts(p: Block, t: boolean): Fact | null {
    return { op: p.code & 0xf0, a: p.exit[A], o: this.operand(p, p.exit), t, origin: p.id * 8192 + (t ? 1 : 0), next: p.outFacts };
  }

  /** Sets b.entry and b.facts from its predecessors' exits. */
  private enter(b: Block): void {
    const { vt } = this;
    const preds = b.preds;
    if (preds.length === 0) {
      // The root: scratch memory is unset, A and X start at 0 (or are not known to).
      b.entry = [];
      for (let i = 0; i < 16; i++) b.entry.push(vt.undef(i));
      if (this.unknownOnEntry) b.entry.push(vt.phi(b.id, A), vt.phi(b.id, X));
      else b.entry.push(vt.konst(0), vt.konst(0));
      b.facts = null;
      return;
    }
    const entry = preds[0].exit.slice();
    for (let i = 0; i < N_ATOMS; i++) {
      if (preds.every((p) => p.exit[i] === entry[i])) continue;
      // What the paths leave bounds the bits it may have (the variable part of a
      // live VLAN offset is 0 or 4: then `tcp[k]` still folds into one load).
      let bits = 0;
      for (const p of preds) bits |= vt.bits(p.exit[i]);
      entry[i] = vt.phi(b.id, i, bits);
    }
    b.entry = entry;
    const edgeFacts = (p: Block) => (isCond(p) && p.jt !== p.jf ? this.sideFacts(p, p.jt === b) : p.outFacts);
    if (preds.length === 1) {
      b.facts = edgeFacts(preds[0]);
      return;
    }
    const lists: (Fact | null)[] = [];
    for (const p of preds) lists.push(edgeFacts(p));
    // Keep the facts of the origins every path went through: an origin seen in
    // lists 0..i-1 is stamped i-1; list i moves the stamp on; survivors end at n-1.
    const seen = this.seen;
    const base = this.stamp;
    this.stamp += lists.length;
    for (let f = lists[0]; f; f = f.next) seen.set(f.origin, base);
    for (let i = 1; i < lists.length; i++) {
      for (let f = lists[i]; f; f = f.next) if (seen.get(f.origin) === base + i - 1) seen.set(f.origin, base + i);
    }
    const last = base + lists.length - 1;
    let out: Fact | null = null;
    for (let f = lists[0]; f; f = f.next) {
      if (seen.get(f.origin) === last) out = { op: f.op, a: f.a, o: f.o, t: f.t, origin: f.origin, next: out };
    }
    b.facts = out;
  }

  /** Rewrites b's statements given the values V on entry (updated to the exit). */
  private rewrite(b: Block, V: number[]): boolean {
    const { vt } = this;
    let changed = false;
    const out: Stmt[] = [];
    let facts = b.facts;
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
      // A division by X that cannot be by zero here is an ordinary operation.
      let trap = isTrap(cand);
      if (trap) {
        if (vt.decide(JEQ, V[X], vt.konst(0), facts) === false) trap = false;
        else facts = { op: JEQ, a: V[X], o: vt.konst(0), t: false, origin: trapOrigin(b, out.length), next: facts };
      }
      const chosen = trap ? cand : this.choose(cand, def, v, V);
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

  /**
   * The statement to give atom `def` the value `v` (null: it already has it).
   * Preference: nothing; a constant; an instruction that reads no register or
   * scratch word (re-reading `len` or a packet location already read is safe:
   * the value exists, so the read succeeded); a register move; a scratch word.
   * The fewer registers a statement reads, the more of what computed them can die.
   */
  private choose(s: Stmt, def: number, v: number, V: number[]): Stmt | null {
    const { vt } = this;
    const c = vt.constant(v);
    // What differing paths left in an atom is, for libpcap, no value at all: reading
    // it again is no repeat, and tcpdump's program keeps the reload; so does ours.
    if (V[def] === v && !vt.isPhi(v)) return null;
    if (def === A) {
      if (c !== undefined) return s.code === (LD | IMM) && s.k === c ? s : { code: LD | IMM, k: c };
      if (s.code === (LD | LEN) || (cls(s.code) === LD && mode(s.code) === ABS)) return s;
      if (vt.isLen(v)) return { code: LD | LEN, k: 0 };
      const l = vt.absLoad(v);
      if (l && l.k < SKF_AD_OFF) return { code: l.code, k: l.k };
      if (s.code !== TXA && V[X] === v) return { code: TXA, k: 0 };
      if (cls(s.code) === ALU) {
        for (let j = 0; j < 16; j++) if (V[j] === v) return { code: LD | MEM, k: j };
      }
      return s;
    }
    if (def === X) {
      if (c !== undefined) return s.code === (LDX | IMM) && s.k === c ? s : { code: LDX | IMM, k: c };
      if (s.code === TAX || s.code === (LDX | MEM)) {
        const off = vt.mshOffset(v);
        if (off !== undefined) return { code: LDX | B | MSH, k: off };
        if (vt.isLen(v)) return { code: LDX | LEN, k: 0 };
        if (s.code !== TAX && V[A] === v) return { code: TAX, k: 0 };
      }
      return s;
    }
    return s;
  }

  // ---------------------------------------------------------------- liveness and dead code

  /**
   * Live atoms into and out of every reached block, and whether an accepting
   * return is still reachable from it (the graph is a DAG: one backward sweep).
   */
  liveness(): void {
    for (let i = this.order.length - 1; i >= 0; i--) {
      const b = this.order[i];
      if (!b.reached) continue;
      b.liveOut = (b.jt ? b.jt.liveIn : 0) | (b.jf ? b.jf.liveIn : 0);
      b.liveIn = blockLiveIn(b, b.liveOut);
      b.canAccept = isRet(b) ? b.code === RET_A || b.k !== 0 : b.jt!.canAccept || b.jf!.canAccept;
    }
  }

  /** Removes dead statements (dead packet loads included) and applies the rewrites that need liveness. */
  deadCode(): boolean {
    // First, on its own (what it relies on, the values its predecessors leave, the
    // folds below change): the blocks that only recompute what they found.
    let changed = false;
    for (const b of this.order) {
      if (b.reached && !this.first && this.recomputes(b)) {
        b.stmts = [];
        changed = true;
      }
    }
    if (changed) return true;
    for (const b of this.order) {
      if (!b.reached) continue;
      const { unsafe } = this.walk(b, b.entry.slice(), b.facts, b.canAccept);
      const keep = new Array<boolean>(b.stmts.length).fill(true);
      liveBefore(b.stmts, b.liveOut | termUses(b), (i, after) => {
        keep[i] = (after & (1 << stmtDef(b.stmts[i]))) !== 0 || unsafe[i];
        return keep[i];
      });
      if (keep.includes(false)) {
        b.stmts = dropStmts(b.stmts, keep);
        changed = true;
      }
      // X where the last statement runs (after the removals above; b.exit predates them).
      let xc: number | undefined;
      if (b.stmts.length > 0 && isXSrc(b.stmts[b.stmts.length - 1].code) && !hasLocalJump(b)) {
        const V = b.entry.slice();
        if (simulate(this.vt, b.stmts.slice(0, -1), V, b.id)) xc = this.vt.constant(V[X]);
      }
      changed = foldIntoBranch(b, xc, !this.first) || changed;
    }
    return changed;
  }

  /**
   * libpcap's opt_blk special case: a block whose statements leave A and X as they
   * found them (known values, not what merging paths left), while nothing after it
   * reads anything, does nothing its test needs, and loses all its statements (its
   * loads with them). Never one with a local jump or a division that might reject.
   */
  private recomputes(b: Block): boolean {
    const { vt } = this;
    if (b.stmts.length === 0 || b.liveOut !== 0 || hasLocalJump(b) || b.stmts.some(isTrap)) return false;
    const known = (v: number) => !vt.isPhi(v) && !vt.isUndef(v);
    return known(b.entry[A]) && known(b.entry[X]) && b.exit[A] === b.entry[A] && b.exit[X] === b.entry[X];
  }

  /**
   * foldIndex over every block. A separate step, on a fresh analysis: folding can
   * make a block read the X its predecessor leaves, which dead-code removal in the
   * same sweep (going by the liveness from before the fold) could have deleted.
   */
  foldIndexes(): boolean {
    let changed = false;
    for (const b of this.order) if (b.reached) changed = this.foldIndex(b) || changed;
    return changed;
  }

  /**
   * `tax; ld [x+k]` where X = base + c and X held `base` before the `tax`: drop the
   * `tax` and load [x+(k+c)] (when nothing else reads the new X, no sum can wrap, and
   * the `tax` ends `ld #c; add x`, the one shape libpcap folds).
   */
  private foldIndex(b: Block): boolean {
    const { vt } = this;
    const n = b.stmts.length;
    if (n < 2 || hasLocalJump(b)) return false;
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
      if (j < 0 || b.stmts[j].code !== TAX || xBefore[j] !== ad.base || !indexSum(b.stmts, j)) continue;
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
        const facts = isGoto(p) ? p.outFacts : this.sideFacts(p, side);
        const start = side ? p.jt! : p.jf!;
        // A goto falling into a test without statements gains nothing from jumping
        // past it (no load is skipped, the test stays for its other ways in) and
        // would lose its fall-through.
        if (isGoto(p) && start.stmts.length === 0 && start.preds.length > 1) continue;
        let s = start;
        for (let guard = 0; guard < 4096 && !isRet(s); guard++) {
          const sim = p.exit.slice();
          const w = this.walk(s, sim, facts, s.canAccept);
          if (w.rejects || w.unsafe.includes(true)) break; // its divisions might reject: it must run
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
        if (isCond(p) && p.jt === p.jf && p !== this.root) makeGoto(p, p.jt!);
        p.liveOut = p.jt!.liveIn | p.jf!.liveIn;
        p.liveIn = blockLiveIn(p, p.liveOut);
      }
    }
    return changed;
  }

  // ---------------------------------------------------------------- pull-ups

  /** The pull-ups of one chain (see tryPullup); true if the graph changed. */
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
   * further down, and move S in front of D, where its reload of val is redundant;
   * repeat down the chain. Only tests whose sole way in is the chain are touched,
   * and nothing any block reads may change (see the checks).
   *
   * One call handles the whole chain: a move keeps every value that is read after
   * the chain, so what the analysis says of the blocks further down stays true,
   * and only the predecessor lists need updating as blocks move.
   */
  private tryPullup(b: Block, orChain: boolean): boolean {
    const common = (d: Block) => (orChain ? d.jt : d.jf);
    const next = (d: Block) => (orChain ? d.jf! : d.jt!);
    const setNext = (d: Block, to: Block) => {
      if (orChain) d.jf = to;
      else d.jt = to;
    };
    const target = common(b)!;
    const entryPreds = b.preds;
    const val = entryPreds[0].exit[A];
    for (const p of entryPreds) if (p.exit[A] !== val) return false;
    const inChain = (d: Block, from: Block | null) =>
      isCond(d) && d.reached && common(d) === target && (from === null || (d.preds.length === 1 && d.preds[0] === from && common(from) !== d));
    // Blocks that S will now run before: none may contain a division (it could reject).
    const hasTrap = (x: Block) => x.stmts.some(isTrap);

    let head = b;
    let moved = false;
    for (;;) {
      let prev: Block | null = null;
      let d = head;
      for (;;) {
        if (!inChain(d, prev)) return moved;
        if (d.exit[A] !== val) break;
        prev = d;
        d = next(d);
      }
      if (hasTrap(d)) return moved;
      const skipped = [d];
      let sprev = d;
      let s = next(d);
      for (;;) {
        if (!inChain(s, sprev)) return moved;
        if (s.exit[A] === val) break;
        if (hasTrap(s)) return moved;
        skipped.push(s);
        sprev = s;
        s = next(s);
      }
      if (hasTrap(s)) return moved;
      // In front of D, S must change nothing: A already holds val, and whatever else
      // it (re)computes must be there already. Its test then compares the same values.
      const E = d.entry;
      const sim = E.slice();
      if (!simulate(this.vt, s.stmts, sim, s.id) || !sameOn(ALL_ATOMS, sim, E)) return moved;
      if (isXSrc(s.code) && sim[X] !== s.exit[X]) return moved;
      // Where S's two sides lead, every atom read must hold what it held before:
      // S's common side now leaves E, and S's old successor now follows sprev.
      // And since a packet may now leave the chain by S rather than by a test it
      // skipped, all their common sides must leave the same values.
      if (!sameOn(target.liveIn, s.exit, E)) return moved;
      for (const x of skipped) if (!sameOn(target.liveIn, x.exit, E)) return moved;
      const after = next(s);
      if (!sameOn(after.liveIn, s.exit, sprev.exit)) return moved;

      setNext(sprev, after);
      setNext(s, d);
      if (prev) {
        setNext(prev, s);
        s.preds = [prev];
      } else {
        for (const p of entryPreds) replaceSucc(p, d, s);
        s.preds = entryPreds;
        head = s;
      }
      d.preds = [s];
      after.preds = after.preds.map((p) => (p === s ? sprev : p));
      s.entry = E;
      s.exit = E.slice();
      moved = true;
    }
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
      if (!isXSrc(c)) return vt.alu(c, V[A], vt.konst(s.k));
      if ((op === DIV || op === MOD) && vt.constant(V[X]) === 0) return undefined;
      return vt.alu(c, V[A], V[X]);
    }
    default:
      return c === TAX ? V[A] : V[X];
  }
}

/**
 * Runs the statements of block `block` symbolically over V; false if they always
 * reject. Along local jumps, V follows each path; where paths meet, an atom they
 * leave different values in gets a value of its own (a phi of that place).
 */
function simulate(vt: ValueTable, stmts: readonly Stmt[], V: number[], block: number): boolean {
  if (!stmts.some(isLocalJump)) {
    for (const s of stmts) {
      const v = evalStmt(vt, s, V);
      if (v === undefined) return false;
      V[stmtDef(s)] = v;
    }
    return true;
  }
  const n = stmts.length;
  const arriving: (number[] | undefined)[] = new Array(n + 1);
  const meet = (at: number, into: number[] | undefined, from: number[]): number[] => {
    if (!into) return from.slice();
    for (let i = 0; i < N_ATOMS; i++) if (into[i] !== from[i]) into[i] = vt.localPhi(block, at, i);
    return into;
  };
  let cur: number[] | undefined = V.slice();
  for (let i = 0; i <= n; i++) {
    const a = arriving[i];
    if (a) cur = cur ? meet(i, cur, a) : a;
    if (i === n || !cur) continue;
    const s = stmts[i];
    if (isLocalJump(s)) {
      for (const t of localTargets(s, i)) arriving[t] = meet(t, arriving[t], cur);
      cur = undefined;
      continue;
    }
    const v = evalStmt(vt, s, cur);
    if (v === undefined) cur = undefined;
    else cur[stmtDef(s)] = v;
  }
  if (!cur) return false;
  for (let i = 0; i < N_ATOMS; i++) V[i] = cur[i];
  return true;
}

const ALL_ATOMS = (1 << N_ATOMS) - 1;

/** True if V1 and V2 agree on every atom in `atoms`. */
function sameOn(atoms: number, V1: number[], V2: number[]): boolean {
  for (let i = 0; i < N_ATOMS; i++) if (atoms & (1 << i) && V1[i] !== V2[i]) return false;
  return true;
}

/**
 * Whether the `tax` at j ends `ld #k; add x` (with an `ldxb 4*([k]&0xf)` allowed
 * between): the only shape whose sum libpcap's peephole folds into the next load.
 */
function indexSum(stmts: readonly Stmt[], j: number): boolean {
  if (j < 2 || stmts[j - 1].code !== (ALU | ADD | SRC_X)) return false;
  const before = stmts[j - 2].code === (LDX | B | MSH) ? j - 3 : j - 2;
  return before >= 0 && stmts[before].code === (LD | IMM);
}

/** The origin of the fact "the division at stmt i of b passed" (jump sides use 0 and 1). */
function trapOrigin(b: Block, i: number): number {
  return b.id * 8192 + 2 + i;
}

/**
 * When A dies at the branch, fold the block's last operation into the test. As
 * libpcap's opt_peep: `sub #c; jeq #d` → `jeq #(d+c)` (also `sub x` when X is the
 * constant `xc`), `sub x; jeq #0` → `jeq x`, `and #m; jeq #0` → `jset #m` (targets
 * swapped). With `more` (the second pass, where it can no longer make two tests
 * look alike that libpcap keeps apart): `add #c`/`xor #c; jeq`, `xor x; jeq #0`,
 * `and x; jeq #0`, `and #m; jgt #0` → `jset #m`, `and #bit; jeq #bit` → `jset #bit`.
 */
function foldIntoBranch(b: Block, xc: number | undefined, more: boolean): boolean {
  if (!isCond(b) || b.stmts.length === 0 || (b.liveOut & BIT_A) !== 0) return false;
  const s = b.stmts[b.stmts.length - 1];
  if (cls(s.code) !== ALU || isXSrc(b.code)) return false;
  const op = b.code & 0xf0;
  const k = b.k;
  const sop = aluOp(s.code);
  const sx = isXSrc(s.code);
  let code = -1, nk = 0, swap = false;
  if (op === JEQ && !sx && sop === SUB) { code = b.code; nk = (k + s.k) >>> 0; }
  else if (op === JEQ && sx && sop === SUB && xc !== undefined) { code = b.code; nk = (k + xc) >>> 0; }
  else if (op === JEQ && sx && sop === SUB && k === 0) { code = 0x05 | JEQ | SRC_X; }
  else if (op === JEQ && !sx && sop === AND && k === 0) { code = 0x05 | JSET; nk = s.k; swap = true; }
  else if (!more) return false;
  else if (op === JEQ && !sx && sop === ADD) { code = b.code; nk = (k - s.k) >>> 0; }
  else if (op === JEQ && !sx && sop === XOR) { code = b.code; nk = (k ^ s.k) >>> 0; }
  else if (op === JEQ && sx && sop === XOR && k === 0) { code = 0x05 | JEQ | SRC_X; }
  else if (op === JEQ && sx && sop === AND && k === 0) { code = 0x05 | JSET | SRC_X; swap = true; }
  else if (op === JGT && sop === AND && !sx && k === 0) { code = 0x05 | JSET; nk = s.k; }
  else if (op === JEQ && sop === AND && !sx && k === s.k && k !== 0 && (k & (k - 1)) === 0) { code = 0x05 | JSET; nk = k; }
  if (code < 0) return false;
  // A local jump to the folded operation now lands on the test, which does it.
  b.stmts = dropStmts(b.stmts, b.stmts.map((_, i) => i < b.stmts.length - 1));
  b.code = code;
  b.k = nk;
  if (swap) [b.jt, b.jf] = [b.jf, b.jt];
  return true;
}
