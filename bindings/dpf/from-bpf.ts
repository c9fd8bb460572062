// Classic BPF → DPF: the disjunction of DPF descriptions that accepts exactly the
// packets a BPF program accepts, truncated packets included, or an EFILTER naming the
// instruction and the construct that has no DPF form.
//
// Why paths. A classic BPF program is a DAG (the kernel's rules admit forward jumps
// only), so the packets it accepts are the union, over its paths that end in a nonzero
// `ret #k`, of the packets that follow each path. A DPF description is a conjunction of
// equalities, so each accepting path becomes one description when every condition on it
// is an equality on a packet field; the program becomes the disjunction (DNF) of them.
//
// How a path is read. The walk runs the program symbolically, so it depends on no code
// shape: A, X and M[] hold a constant, a packet field ((load & mask) - minus, the minus
// coming only from the `sub` that a pcap-filter relation puts right before its `jeq`),
// the header length `4*([k]&0xf) + add` that `ldxb` makes, or an opaque value that says
// why it is opaque (the packet length, arithmetic on a loaded value, ...). A jump on a
// field gives its edges these conditions:
//   jeq #v   true: compare (mask, v); false: compare (mask, v ^ mask) when the mask is a
//            single bit, else an inequality;
//   jset #m  false: compare (mask & m, 0); true: compare (bit, bit) when mask & m is a
//            single bit, else an inequality;
//   jgt/jge, and any test of an opaque value: a condition with no DPF form.
// Bits the path's compares already pin decide a test outright (one edge, no condition),
// and an edge whose compare contradicts them, or makes one of the path's inequalities
// false, is infeasible and not walked: `tcp and src host A` tries libpcap's IPv6, ARP
// and RARP alternatives and drops them there. Earlier inequalities never decide a test
// by themselves, since they may be dropped below. Loads through `ldxb 4*([k]&0xf)` are
// relative to that header: the description gets the shift { offset: k, size: 1, mask:
// 0xf, scale: 4 } after the path's absolute compares, then the relative ones (compares
// are order-independent, so regrouping them changes nothing); two different header
// lengths on one path have no DPF form.
//
// Inequalities and other conditions without a DPF form. Such a condition on the edge a
// path took at node N can still be dropped when no packet the program rejects gets in:
//   implied   the path's compares contradict the equality (it requires [12:2] = 0x800,
//             so [12:2] != 0x806 adds nothing);
//   rejoined  the path later passes through the other edge's target T with the same live
//             registers: a packet that fails the condition jumps to T in the state the
//             path reaches T in, and from there is accepted as the path's packets are.
//             This is pcap-filter's `or`: in `port 53`, "src = 53, or (src != 53 and
//             dst = 53)" meet at one success node, so the second description is "dst = 53";
//   covered   from T, with the registers at N, every way through the program that the
//             description's compares leave open accepts, and reads no byte the
//             description does not already require: `ether host A` is "src = A, or (the
//             src test fails somewhere and dst = A)", and from any failed src word a
//             packet with dst = A is accepted.
// A condition that is none of these is refused. The last clause is why some disjunctions
// are: in `vlan and ip proto 17 or ip`, the non-VLAN description [16:2] = 0x800 would
// accept a VLAN frame cut before byte 28, which the program rejects when it reads [27].
//
// Bounds. A BPF load past the captured bytes rejects the packet, a DPF compare past
// them fails the atom, so the description must read as far as every load on its path.
// When its compares fall short (the load's test was decided or dropped), the compare
// nearest before the end is widened to a 2- or 4-byte load of the same bits, or, when
// none is near enough, the description is split in two by a guard on the last byte
// needed (top bit clear; top bit set), which together say "the packet holds this byte".
//
// Which program. compile.ts gives the unoptimized one (libpcap's gencode, `tcpdump -O`):
// every test reloads its field, so shapes are regular and messages point at the
// construct the user wrote. The walk is equally exact on optimized programs (the
// optimizer folds constant arithmetic, so a few more expressions have a form), but each
// program is only matched to itself: the two differ on packets cut short.

import { validateProgram, type BpfProgram } from '../bpf.js';
import { NetpdError } from '../errors.js';
import { canonicalDescription, descriptionKey, DPF_MAX_OFFSET, type CanonicalAtom, type DpfAtom } from './description.js';

/** Most descriptions one program may turn into. */
export const DPF_MAX_DESCRIPTIONS = 64;
/** Most paths through a program the walk follows (accepting, rejecting or infeasible). */
export const BPF_MAX_PATHS = 4096;

/** The base of fields measured from the first byte of the frame. */
const FRAME = -1;

type Size = 1 | 2 | 4;

/** (load(base + offset, size) & mask) - minus, where base is FRAME or the ldxb source byte. */
interface Field { kind: 'field'; base: number; offset: number; size: Size; mask: number; minus: number }
type Value =
  | { kind: 'const'; k: number }
  | { kind: 'index'; msh: number; add: number } // 4*([msh]&0xf) + add
  | Field
  | { kind: 'opaque'; why: string };

interface Compare { base: number; offset: number; size: Size; mask: number; value: number }

interface Regs { A: Value; X: Value; M: readonly Value[] }

/**
 * A condition on the path that no compare expresses (see the top of the file): `other` is
 * the target of the edge not taken, or NOWHERE when the alternative is rejection.
 */
interface Residual { pc: number; why: string; other: number; regs: Regs; negation?: Compare }
const NOWHERE = -1;

interface Need { base: number; end: number; pc: number }

interface Path {
  regs: Regs;
  compares: Compare[];
  residuals: Residual[];
  needs: Need[];
  visited: [number, Regs][];
}

type Edge = { never: true } | { compare?: Compare; residual?: Omit<Residual, 'pc' | 'other' | 'regs'> };
const NEVER: Edge = { never: true };
const ALWAYS: Edge = {};

const ZERO: Value = { kind: 'const', k: 0 };
const fullMask = (size: number): number => (size === 4 ? 0xffffffff : (1 << (size * 8)) - 1);
const hex = (v: number): string => `0x${v.toString(16)}`;
const singleBit = (m: number): boolean => m !== 0 && (m & (m - 1)) === 0;
const headerLength = (msh: number): string => `4*([${msh}]&0xf)`;
const ALU_NAMES: Record<number, string> = {
  0x00: 'add', 0x10: 'sub', 0x20: 'mul', 0x30: 'div', 0x40: 'or', 0x50: 'and', 0x60: 'lsh', 0x70: 'rsh', 0x80: 'neg', 0x90: 'mod', 0xa0: 'xor',
};
const JUMP_NAMES: Record<number, string> = { 0x10: 'jeq', 0x20: 'jgt', 0x30: 'jge', 0x40: 'jset' };

// Where a byte is, in messages: "34", or "4*([14]&0xf) + 16" after the header length.
const byteName = (base: number, at: number): string => (base === FRAME ? `${at}` : `${headerLength(base)} + ${at}`);

function fieldName(f: { base: number; offset: number; size: number; mask: number }): string {
  return `[${byteName(f.base, f.offset)}:${f.size}]${f.mask === fullMask(f.size) ? '' : ` & ${hex(f.mask)}`}`;
}

function refuse(why: string, pc: number): NetpdError {
  return new NetpdError('EFILTER', `${why} (instruction ${pc})`, { details: { instruction: pc } });
}

/** The bits of the field at (base, offset, size) that the compares pin, and their values. */
function known(compares: readonly Compare[], base: number, offset: number, size: number): { mask: number; value: number } {
  let mask = 0;
  let value = 0;
  for (const c of compares) {
    if (c.base !== base) continue;
    for (let j = 0; j < c.size; j++) {
      const i = c.offset + j - offset;
      if (i < 0 || i >= size) continue;
      const from = 8 * (c.size - 1 - j);
      const to = 8 * (size - 1 - i);
      mask |= ((c.mask >>> from) & 0xff) << to;
      value |= ((c.value >>> from) & 0xff) << to;
    }
  }
  return { mask: mask >>> 0, value: value >>> 0 };
}

/** 1 when the compares make the equality true, 0 when they make it false, undefined otherwise. */
function decide(compares: readonly Compare[], eq: Compare): 0 | 1 | undefined {
  const k = known(compares, eq.base, eq.offset, eq.size);
  if ((k.mask & eq.mask & (k.value ^ eq.value)) !== 0) return 0;
  return (eq.mask & ~k.mask) === 0 ? 1 : undefined;
}

function sameValue(a: Value, b: Value): boolean {
  if (a === b) return true;
  switch (a.kind) {
    case 'const': return b.kind === 'const' && a.k === b.k;
    case 'index': return b.kind === 'index' && a.msh === b.msh && a.add === b.add;
    case 'field': return b.kind === 'field' && a.base === b.base && a.offset === b.offset && a.size === b.size && a.mask === b.mask && a.minus === b.minus;
    case 'opaque': return false; // the same opaque value is the same object
  }
}

// Registers each instruction may read before writing them: bit i for M[i], then A, X.
const LIVE_A = 1 << 16, LIVE_X = 1 << 17;
function liveness(program: BpfProgram): number[] {
  const live = new Array<number>(program.length).fill(0);
  for (let pc = program.length - 1; pc >= 0; pc--) {
    const { code, jt, jf, k } = program[pc];
    const cls = code & 7;
    const next = (to: number): number => live[pc + 1 + to];
    let out = 0, use = 0, def = 0;
    if (cls === 6) {
      use = (code & 0x18) === 0x10 ? LIVE_A : (code & 0x18) === 0x08 ? LIVE_X : 0;
    } else if (cls === 5) {
      out = (code & 0xf0) === 0 ? next(k) : next(jt) | next(jf);
      use = (code & 0xf0) === 0 ? 0 : LIVE_A | ((code & 8) !== 0 ? LIVE_X : 0);
    } else {
      out = next(0);
      const mode = code & 0xe0;
      if (cls === 0) { def = LIVE_A; use = mode === 0x60 ? 1 << k : mode === 0x40 ? LIVE_X : 0; }
      else if (cls === 1) { def = LIVE_X; use = mode === 0x60 ? 1 << k : 0; }
      else if (cls === 2) { def = 1 << k; use = LIVE_A; }
      else if (cls === 3) { def = 1 << k; use = LIVE_X; }
      else if (cls === 4) { def = LIVE_A; use = LIVE_A | ((code & 8) !== 0 && (code & 0xf0) !== 0x80 ? LIVE_X : 0); }
      else { def = (code & 0xf8) === 0 ? LIVE_X : LIVE_A; use = (code & 0xf8) === 0 ? LIVE_A : LIVE_X; }
    }
    live[pc] = use | (out & ~def);
  }
  return live;
}

function sameLive(a: Regs, b: Regs, live: number): boolean {
  if ((live & LIVE_A) !== 0 && !sameValue(a.A, b.A)) return false;
  if ((live & LIVE_X) !== 0 && !sameValue(a.X, b.X)) return false;
  for (let i = 0; i < 16; i++) if ((live & (1 << i)) !== 0 && !sameValue(a.M[i], b.M[i])) return false;
  return true;
}

function foldAlu(op: number, a: number, b: number): number {
  switch (op) {
    case 0x00: return (a + b) >>> 0;
    case 0x10: return (a - b) >>> 0;
    case 0x20: return Math.imul(a, b) >>> 0;
    case 0x30: return Math.floor(a / b);
    case 0x40: return (a | b) >>> 0;
    case 0x50: return (a & b) >>> 0;
    case 0x60: return b >= 32 ? 0 : (a << b) >>> 0;
    case 0x70: return b >= 32 ? 0 : a >>> b;
    case 0x80: return -a >>> 0;
    case 0x90: return a % b;
    default: return (a ^ b) >>> 0;
  }
}

// A op= b; `relation` is true for a `sub` right before a `jeq`, the shape of a
// pcap-filter relation (`ip[2:2] = 40` is A = field - 40; jeq #0).
function alu(op: number, a: Value, b: Value, relation: boolean): Value {
  if (a.kind === 'const' && b.kind === 'const') return { kind: 'const', k: foldAlu(op, a.k, b.k) };
  if (a.kind === 'field' && b.kind === 'const' && a.minus === 0) {
    if (op === 0x50) return { ...a, mask: (a.mask & b.k) >>> 0 };
    if (op === 0x10 && relation) return { ...a, minus: b.k };
  }
  if (op === 0x00) {
    const [i, c] = a.kind === 'index' ? [a, b] : [b, a];
    if (i.kind === 'index' && c.kind === 'const' && i.add + c.k <= DPF_MAX_OFFSET) return { kind: 'index', msh: i.msh, add: i.add + c.k };
  }
  if (a.kind === 'opaque') return a;
  if (b.kind === 'opaque') return b;
  const name = ALU_NAMES[op] ?? hex(op);
  const f = a.kind === 'field' ? a : b.kind === 'field' ? b : undefined;
  if (f) return { kind: 'opaque', why: `arithmetic on a loaded value (${name} on ${fieldName(f)})` };
  const i = a.kind === 'index' ? a : (b as { msh: number });
  return { kind: 'opaque', why: `arithmetic on a header length (${name} on ${headerLength(i.msh)})` };
}

/** The edges of a jump on A: [true edge, false edge]. */
function jumpEdges(op: number, a: Value, operand: Value, compares: readonly Compare[]): [Edge, Edge] | string {
  if (a.kind === 'const' && operand.kind === 'const') {
    const k = operand.k;
    const taken = op === 0x10 ? a.k === k : op === 0x20 ? a.k > k : op === 0x30 ? a.k >= k : (a.k & k) !== 0;
    return taken ? [ALWAYS, NEVER] : [NEVER, ALWAYS];
  }
  if (a.kind === 'opaque') return a.why;
  if (a.kind === 'index') return `a test on a header length (${headerLength(a.msh)})`;
  if (operand.kind !== 'const') return `a comparison of two values computed from the packet (${JUMP_NAMES[op]} x)`;
  if (a.kind === 'const') return `a comparison of two values computed from the packet (${JUMP_NAMES[op]})`;
  const k = operand.k;
  const { base, offset, size } = a;
  const mask = (a.mask & fullMask(size)) >>> 0;
  // A relation's `sub` is read by its `jeq`; any other test of the difference is arithmetic.
  if (a.minus !== 0 && op !== 0x10) return `arithmetic on a loaded value (sub on ${fieldName(a)})`;
  if (op === 0x10) {
    const value = (k + a.minus) >>> 0;
    if ((value & ~mask) !== 0) return [NEVER, ALWAYS];
    const eq: Compare = { base, offset, size, mask, value };
    if (mask === 0) return [ALWAYS, NEVER];
    const d = decide(compares, eq);
    if (d !== undefined) return d ? [ALWAYS, NEVER] : [NEVER, ALWAYS];
    if (singleBit(mask)) return [{ compare: eq }, { compare: { ...eq, value: (value ^ mask) >>> 0 } }];
    return [{ compare: eq }, { residual: { why: `\`not\` of an equality (jeq false edge on ${fieldName(eq)} = ${hex(value)})`, negation: eq } }];
  }
  if (op === 0x40) {
    const bits = (mask & k) >>> 0;
    if (bits === 0) return [NEVER, ALWAYS];
    const clear: Compare = { base, offset, size, mask: bits, value: 0 };
    const d = decide(compares, clear);
    if (d !== undefined) return d ? [NEVER, ALWAYS] : [ALWAYS, NEVER];
    const set: Edge = singleBit(bits)
      ? { compare: { ...clear, value: bits } }
      : { residual: { why: `a test that one of several bits is set (jset true edge on ${fieldName(clear)})`, negation: clear } };
    return [set, { compare: clear }];
  }
  // jgt, jge: decided when the path pins the whole field or the constant is out of its range.
  const pinned = known(compares, base, offset, size);
  if ((mask & ~pinned.mask) === 0) {
    const v = (pinned.value & mask) >>> 0;
    return (op === 0x20 ? v > k : v >= k) ? [ALWAYS, NEVER] : [NEVER, ALWAYS];
  }
  if (op === 0x20 ? k >= mask : k > mask) return [NEVER, ALWAYS];
  if (op === 0x30 && k === 0) return [ALWAYS, NEVER];
  return `a range test (${JUMP_NAMES[op]}) on ${fieldName({ base, offset, size, mask })}`;
}

// Adds a compare of an undecided test to the path; false when it makes one of the
// path's inequalities false (an infeasible edge).
function addCompare(path: Path, c: Compare): boolean {
  path.compares.push(c);
  return !path.residuals.some((r) => r.negation !== undefined && decide(path.compares, r.negation) === 1);
}

// Widens the compare nearest before `end` on `base` so that it reaches `end`; false if none can.
function cover(compares: Compare[], base: number, end: number): boolean {
  let best = -1;
  compares.forEach((c, i) => {
    if (c.base === base && c.offset < end && (best < 0 || c.offset > compares[best].offset)) best = i;
  });
  if (best < 0) return false;
  const c = compares[best];
  const span = end - c.offset;
  const size: Size = span <= 2 ? 2 : 4;
  if (span > 4 || end < size) return false;
  const shift = 8 * (end - c.offset - c.size);
  compares[best] = { base, offset: end - size, size, mask: (c.mask << shift) >>> 0, value: (c.value << shift) >>> 0 };
  return true;
}

// How far the compares' loads reach on `base`. A relative compare reaches at least as
// far on the frame too, since the header base it is relative to is never negative.
function reach(compares: readonly Compare[], base: number, msh: number | undefined): number {
  let end = 0;
  for (const c of compares) {
    if (c.base === base || base === FRAME) end = Math.max(end, c.offset + c.size);
    if (c.base !== FRAME && base === FRAME && msh !== undefined) end = Math.max(end, msh + 1);
  }
  return end;
}

// The path's compares made to reach as far as its loads on each base (see "Bounds" at
// the top): as they are, widened, or, when neither does, split in two by a guard that
// reads the last byte needed — one variant with its top bit clear, one with it set —
// which together say exactly "the packet holds this byte".
function reachingEveryLoad(compares: readonly Compare[], needs: readonly Need[], msh: number | undefined): Compare[][] {
  let variants = [compares.slice()];
  for (const base of msh === undefined ? [FRAME] : [msh, FRAME]) {
    const end = needs.reduce((e, n) => (n.base === base ? Math.max(e, n.end) : e), 0);
    variants = variants.flatMap((v) => {
      if (reach(v, base, msh) >= end || cover(v, base, end)) return [v];
      const guard: Compare = { base, offset: end - 1, size: 1, mask: 0x80, value: 0 };
      return [[...v, guard], [...v, { ...guard, value: 0x80 }]];
    });
  }
  return variants;
}

// What one instruction other than a jump or a return does to the registers: the new
// registers, the load it made (for bounds), and why it has no DPF form, if so.
interface Step { regs: Regs; need?: Omit<Need, 'pc'>; stuck?: string; rejects?: true }

function execute(program: BpfProgram, pc: number, regs: Regs): Step {
  const { code, k } = program[pc];
  const cls = code & 7;
  const mode = code & 0xe0;
  const set = (v: Value, extra: Omit<Step, 'regs'> = {}): Step => ({ regs: cls === 0 ? { ...regs, A: v } : { ...regs, X: v }, ...extra });
  const load = (base: number, offset: number, size: Size): Step => {
    if (offset + size > DPF_MAX_OFFSET + 1) {
      const why = `a load at offset ${offset}, past the largest offset a DPF atom can name (${DPF_MAX_OFFSET}),`;
      return set({ kind: 'opaque', why }, { stuck: why });
    }
    return set({ kind: 'field', base, offset, size, mask: fullMask(size), minus: 0 }, { need: { base, end: offset + size } });
  };
  switch (cls) {
    case 0: case 1: {
      const size: Size = (code & 0x18) === 0x10 ? 1 : (code & 0x18) === 0x08 ? 2 : 4;
      if (mode === 0x00) return set({ kind: 'const', k });
      if (mode === 0x60) return set(regs.M[k]);
      if (mode === 0x80) return set({ kind: 'opaque', why: 'length tests (len)' });
      if (mode === 0x20) return load(FRAME, k, size);
      if (mode === 0xa0) {
        const step = load(FRAME, k, 1);
        return step.stuck ? step : { ...step, regs: { ...regs, X: { kind: 'index', msh: k, add: 0 } } };
      }
      const x = regs.X;
      if (x.kind === 'const') return load(FRAME, x.k + k, size);
      if (x.kind === 'index') return load(x.msh, x.add + k, size);
      const why = `a load at an offset computed from the packet (${x.kind === 'field' ? fieldName(x) : x.why})`;
      return set({ kind: 'opaque', why }, { stuck: why });
    }
    case 2: case 3: {
      const M = regs.M.slice();
      M[k] = cls === 2 ? regs.A : regs.X;
      return { regs: { ...regs, M } };
    }
    case 4: {
      const op = code & 0xf0;
      const operand: Value = op === 0x80 ? ZERO : (code & 8) !== 0 ? regs.X : { kind: 'const', k };
      const relation = op === 0x10 && program[pc + 1]?.code === 0x15;
      const result: Step = { regs: { ...regs, A: alu(op, regs.A, operand, relation) } };
      if (op !== 0x30 && op !== 0x90) return result;
      // Division by a zero X rejects the packet: a condition on X unless X is a constant.
      if (operand.kind === 'const') return operand.k === 0 ? { regs, rejects: true } : result;
      return { ...result, stuck: `a division by a value computed from the packet (it rejects the packet when that is 0)` };
    }
    default:
      return { regs: (code & 0xf8) === 0 ? { ...regs, X: regs.A } : { ...regs, A: regs.X } };
  }
}

class Translation {
  private readonly live: number[];
  readonly found = new Map<string, CanonicalAtom[]>();
  private paths = 0;
  /** The load that made the last acceptsAll fail, when it was a load past the description. */
  private shortfall?: Omit<Need, 'pc'>;

  constructor(private readonly program: BpfProgram) {
    this.live = liveness(program);
  }

  private leaf(pc: number): void {
    if (++this.paths > BPF_MAX_PATHS) throw refuse(`the program has more than ${BPF_MAX_PATHS} paths to follow`, pc);
  }

  /**
   * Follows every path from `pc`, turning each accepting one into descriptions. Depth
   * first, the true edge before the false one, with the edges still to take on an
   * explicit stack: a path may pass thousands of jumps.
   */
  walk(pc: number, path: Path): void {
    const edges: { from: number; path: Path; cond: Edge; other: number; to: number }[] = [];
    let at: { pc: number; path: Path } | undefined = { pc, path };
    for (;;) {
      if (at) {
        const fork = this.follow(at.pc, at.path);
        if (fork) for (let e = 1; e >= 0; e--) edges.push({ from: fork.from, path: fork.path, cond: fork.conds[e], other: fork.targets[1 - e], to: fork.targets[e] });
      }
      const edge = edges.pop();
      if (!edge) return;
      at = undefined;
      const { from, path: p, cond } = edge;
      if ('never' in cond) continue;
      const branch: Path = { regs: p.regs, compares: p.compares.slice(), residuals: p.residuals.slice(), needs: p.needs.slice(), visited: p.visited.slice() };
      if (cond.residual) branch.residuals.push({ pc: from, other: edge.other, regs: p.regs, ...cond.residual });
      if (cond.compare && !addCompare(branch, cond.compare)) {
        this.leaf(from);
        continue;
      }
      at = { pc: edge.to, path: branch };
    }
  }

  /** Runs one path from `pc` to its return (then null) or to its next conditional jump (its two edges). */
  private follow(pc: number, path: Path): { from: number; path: Path; conds: readonly Edge[]; targets: number[] } | null {
    for (; ; pc++) {
      const { code, jt, jf, k } = this.program[pc];
      const regs = path.regs;
      path.visited.push([pc, regs]);
      if ((code & 7) === 6) {
        this.leaf(pc);
        const v = returned(code, k, regs);
        if (v.kind !== 'const') throw refuse('a return value computed from the packet (ret a) cannot be expressed in DPF', pc);
        if (v.k !== 0) this.accept(path, pc);
        return null;
      }
      if ((code & 7) === 5) {
        if ((code & 0xf0) === 0) { pc += k; continue; }
        const edges = jumpEdges(code & 0xf0, regs.A, (code & 8) !== 0 ? regs.X : { kind: 'const', k }, path.compares);
        const conds: readonly Edge[] = typeof edges === 'string' ? [{ residual: { why: edges } }, { residual: { why: edges } }] : edges;
        return { from: pc, path, conds, targets: [pc + 1 + jt, pc + 1 + jf] };
      }
      const step = execute(this.program, pc, regs);
      if (step.rejects) {
        this.leaf(pc);
        return null;
      }
      if (step.need) path.needs.push({ ...step.need, pc });
      if (step.stuck) path.residuals.push({ pc, why: step.stuck, other: NOWHERE, regs });
      path.regs = step.regs;
    }
  }

  /**
   * True when every packet that satisfies `compares` and whose loads stay within `reach`
   * is accepted by the program from `pc` with registers `regs`. Depth first, the true
   * edge before the false one, on an explicit stack; stops at the first way that does not accept.
   */
  private acceptsAll(pc: number, regs: Regs, compares: Compare[], reach: (base: number) => number): boolean {
    const todo: { pc: number; regs: Regs; compares: Compare[] }[] = [{ pc, regs, compares }];
    for (let way = todo.pop(); way; way = todo.pop()) {
      if (!this.acceptsUntilFork(way, reach, todo)) return false;
    }
    return true;
  }

  /**
   * acceptsAll along one way to its return (false if it does not accept) or its next
   * conditional jump, whose feasible edges go on `todo` (the true edge on top).
   */
  private acceptsUntilFork(way: { pc: number; regs: Regs; compares: Compare[] }, reach: (base: number) => number, todo: { pc: number; regs: Regs; compares: Compare[] }[]): boolean {
    let { pc, regs } = way;
    const { compares } = way;
    for (; ; pc++) {
      const { code, jt, jf, k } = this.program[pc];
      if ((code & 7) === 6) {
        this.leaf(pc);
        const v = returned(code, k, regs);
        return v.kind === 'const' && v.k !== 0;
      }
      if ((code & 7) === 5) {
        if ((code & 0xf0) === 0) { pc += k; continue; }
        const edges = jumpEdges(code & 0xf0, regs.A, (code & 8) !== 0 ? regs.X : { kind: 'const', k }, compares);
        const conds: readonly Edge[] = typeof edges === 'string' ? [ALWAYS, ALWAYS] : edges;
        const targets = [pc + 1 + jt, pc + 1 + jf];
        for (let e = 1; e >= 0; e--) {
          const cond = conds[e];
          if ('never' in cond) continue;
          todo.push({ pc: targets[e], regs, compares: cond.compare ? [...compares, cond.compare] : compares });
        }
        return true;
      }
      const step = execute(this.program, pc, regs);
      if (step.rejects || step.stuck) return false;
      if (step.need && step.need.end > reach(step.need.base)) {
        this.shortfall = step.need;
        return false;
      }
      regs = step.regs;
    }
  }

  private accept(path: Path, pc: number): void {
    const bases = [...new Set([...path.compares, ...path.needs].map((x) => x.base).filter((b) => b !== FRAME))];
    if (bases.length > 1) {
      throw refuse(`headers at two variable offsets (${headerLength(bases[0])} and ${headerLength(bases[1])}) cannot be expressed in one DPF description`, pc);
    }
    const msh = bases.length > 0 ? bases[0] : undefined;
    const variants = reachingEveryLoad(path.compares, path.needs, msh);
    const reachOf = (base: number): number => (base === FRAME || base === msh ? reach(variants[0], base, msh) : 0);
    for (const r of path.residuals) {
      if (r.negation && decide(path.compares, r.negation) === 0) continue;
      if (r.other === NOWHERE) throw refuse(`${r.why} cannot be expressed in DPF`, r.pc);
      const there = path.visited.find(([at]) => at === r.other);
      if (there && sameLive(r.regs, there[1], this.live[r.other])) continue;
      this.shortfall = undefined;
      if (this.acceptsAll(r.other, r.regs, path.compares, reachOf)) continue;
      const short = this.shortfall as Omit<Need, 'pc'> | undefined;
      const hint = short ? ` (dropping it would accept packets cut before byte ${byteName(short.base, short.end)}, which the other branch rejects)` : '';
      throw refuse(`${r.why} cannot be expressed in DPF${hint}`, r.pc);
    }
    for (const compares of variants) {
      const atoms: DpfAtom[] = [];
      const relative: DpfAtom[] = [];
      for (const { base, offset, size, mask, value } of compares) (base === FRAME ? atoms : relative).push({ offset, size, mask, value });
      if (relative.length > 0) atoms.push({ shift: { offset: msh, size: 1, mask: 0x0f, scale: 4 } }, ...relative);
      if (atoms.length === 0) throw refuse('the program accepts packets without testing any field, which a DPF description cannot say', pc);
      let canonical: CanonicalAtom[];
      try {
        canonical = canonicalDescription(atoms);
      } catch (e) {
        throw refuse(`an accepting path has no valid DPF description: ${(e as Error).message}`, pc);
      }
      this.found.set(descriptionKey(canonical), canonical);
      if (this.found.size > DPF_MAX_DESCRIPTIONS) throw refuse(`the program needs more than ${DPF_MAX_DESCRIPTIONS} DPF descriptions`, pc);
    }
  }
}

function returned(code: number, k: number, regs: Regs): Value {
  const rval = code & 0x18;
  return rval === 0 ? { kind: 'const', k } : rval === 0x10 ? regs.A : regs.X;
}

/**
 * The DPF descriptions whose disjunction accepts exactly the packets `program` accepts
 * (any nonzero return is acceptance: DPF has no snap length), canonical and without
 * duplicates, in the order of the program's accepting paths. Throws EBADPROG if the
 * program breaks the kernel's classic BPF rules, and EFILTER naming the instruction and
 * the construct when some accepting path has no DPF form, when the program accepts
 * nothing or every packet, or past DPF_MAX_DESCRIPTIONS descriptions or BPF_MAX_PATHS paths.
 */
export function bpfToDpf(program: BpfProgram): CanonicalAtom[][] {
  validateProgram(program);
  const t = new Translation(program);
  t.walk(0, { regs: { A: ZERO, X: ZERO, M: new Array<Value>(16).fill(ZERO) }, compares: [], residuals: [], needs: [], visited: [] });
  if (t.found.size === 0) throw new NetpdError('EFILTER', 'expression accepts nothing: the program has no accepting path a packet can take');
  return [...t.found.values()];
}
