// Value numbering and branch facts for the optimizer.
//
// Every value a register or scratch word can hold gets a number; the same
// computation gets the same number wherever it happens (hash-consing, as in
// libpcap's optimize.c and Cocke–Schwartz value numbering). Because the packet
// never changes while a filter runs, a load is a pure function of its address:
// `ldh [12]` is one value everywhere, `ldb [x+14]` is one value per value of X.
// Values are normalized as they are made (constants folded, operands of
// commutative operators ordered, `x + 0`, `x & 0xffffffff`, `(x + 1) + 2`, ...) so
// that more computations meet. Folding follows netpd's interpreter exactly:
// shifts by X of 32 or more give 0, division or modulo by zero rejects the packet
// (and is never folded here; the optimizer handles it as a trap).
//
// A fact is a test outcome known on entry to a block: `a OP o` is true or false,
// where `a` and `o` are value numbers. Facts come from the conditional jumps on
// every path into the block; `decide` answers a test from them — exactly the same
// test, a constant the value is known to equal, or an interval / known-zero-bits
// argument over tests of the same value against constants.

import { ADD, AND, B, DIV, H, JEQ, JGE, JGT, JSET, LSH, MOD, MUL, NEG, OR, RSH, SUB, W, XOR, type Fact } from './optimize-cfg.js';

const enum Kind { Const, Load, Len, Alu, Phi, Undef }

const U32 = 0xffffffff;

/** Smallest all-ones mask covering `m`. */
function smear(m: number): number {
  m >>>= 0;
  m |= m >>> 1; m |= m >>> 2; m |= m >>> 4; m |= m >>> 8; m |= m >>> 16;
  return m >>> 0;
}

/** Constant folding with the interpreter's semantics; undefined for division or modulo by zero. */
export function foldAlu(op: number, a: number, b: number): number | undefined {
  switch (op) {
    case ADD: return (a + b) >>> 0;
    case SUB: return (a - b) >>> 0;
    case MUL: return Math.imul(a, b) >>> 0;
    case DIV: return b === 0 ? undefined : Math.floor(a / b) >>> 0;
    case MOD: return b === 0 ? undefined : (a % b) >>> 0;
    case AND: return (a & b) >>> 0;
    case OR: return (a | b) >>> 0;
    case XOR: return (a ^ b) >>> 0;
    case LSH: return b < 32 ? (a << b) >>> 0 : 0;
    case RSH: return b < 32 ? a >>> b : 0;
    case NEG: return (-a) >>> 0;
  }
  return undefined;
}

/** Evaluates a conditional jump's test on constants. */
export function evalTest(op: number, a: number, o: number): boolean {
  switch (op) {
    case JEQ: return a === o;
    case JGT: return a > o;
    case JGE: return a >= o;
    default: return (a & o) !== 0; // JSET
  }
}

const COMMUTATIVE = new Set([ADD, MUL, AND, OR, XOR]);

export class ValueTable {
  private readonly index = new Map<string, number>();
  private readonly kind: Kind[] = [];
  /** Const: the constant. Load: the offset k. Alu: the operator. */
  private readonly kv: number[] = [];
  /** Load: the instruction code. Alu: the left operand. */
  private readonly av: number[] = [];
  /** Load: X's value (IND) or -1. Alu: the right operand (-1 for neg). */
  private readonly bv: number[] = [];
  /** Bits that may be set in the value (an upper bound, used for address arithmetic and masks). */
  private readonly bitsv: number[] = [];

  private intern(key: string, kind: Kind, k: number, a: number, b: number, bits: number): number {
    const known = this.index.get(key);
    if (known !== undefined) return known;
    const v = this.kind.length;
    this.index.set(key, v);
    this.kind.push(kind);
    this.kv.push(k);
    this.av.push(a);
    this.bv.push(b);
    this.bitsv.push(bits >>> 0);
    return v;
  }

  konst(c: number): number {
    c >>>= 0;
    return this.intern(`#${c}`, Kind.Const, c, -1, -1, c);
  }

  isConst(v: number): boolean {
    return this.kind[v] === Kind.Const;
  }

  /** The constant, or undefined. */
  constant(v: number): number | undefined {
    return this.kind[v] === Kind.Const ? this.kv[v] : undefined;
  }

  bits(v: number): number {
    return this.bitsv[v];
  }

  /** A packet load into A: `code` is its LD opcode; `x` is X's value for indirect loads, else -1. */
  load(code: number, k: number, x: number): number {
    k >>>= 0;
    const size = code & 0x18;
    const width = size === W ? 4 : size === H ? 2 : 1;
    if (x >= 0) {
      // [x + k] with X a known constant c is the absolute load [c + k] (when that
      // does not wrap; past 2^32 both simply fail).
      const c = this.constant(x);
      if (c !== undefined && c + k <= U32) return this.load((code & ~0xe0) | 0x20, c + k, -1);
      // [x + k] with X = base + c is [base + (k + c)] when neither sum can wrap.
      if (this.kind[x] === Kind.Alu && this.kv[x] === ADD) {
        const cc = this.constant(this.bv[x]);
        const base = this.av[x];
        if (cc !== undefined && k + cc <= U32 && this.bitsv[base] + cc <= U32) return this.load(code, k + cc, base);
      }
    }
    const bits = width === 4 ? U32 : width === 2 ? 0xffff : 0xff;
    return this.intern(`L${code}:${k}:${x}`, Kind.Load, k, code, x, bits);
  }

  /** `ldxb 4*([k]&0xf)`: the same value as ((ldb [k]) & 0xf) << 2. */
  msh(k: number): number {
    const byte = this.load(0x30 /* LD|B|ABS */, k, -1);
    return this.alu(LSH, this.alu(AND, byte, this.konst(0xf)), this.konst(2));
  }

  /** If `v` is the value `ldxb 4*([k]&0xf)` produces, that k. */
  mshOffset(v: number): number | undefined {
    if (this.kind[v] !== Kind.Alu || this.kv[v] !== LSH || this.constant(this.bv[v]) !== 2) return undefined;
    const m = this.av[v];
    if (this.kind[m] !== Kind.Alu || this.kv[m] !== AND || this.constant(this.bv[m]) !== 0xf) return undefined;
    const l = this.av[m];
    if (this.kind[l] !== Kind.Load || this.av[l] !== 0x30) return undefined;
    return this.kv[l];
  }

  len(): number {
    return this.intern('len', Kind.Len, 0, -1, -1, U32);
  }

  isLen(v: number): boolean {
    return this.kind[v] === Kind.Len;
  }

  /** The unknown value atom `atom` holds on entry to block `block` when its predecessors disagree. */
  phi(block: number, atom: number): number {
    return this.intern(`p${block}:${atom}`, Kind.Phi, 0, block, atom, U32);
  }

  /** A scratch word never stored (reading it is invalid, so it matches nothing). */
  undef(atom: number): number {
    return this.intern(`u${atom}`, Kind.Undef, 0, -1, atom, U32);
  }

  /** If `v` is `base + c` (c a constant), those; used to fold an index into a load offset. */
  addend(v: number): { base: number; c: number } | undefined {
    if (this.kind[v] !== Kind.Alu || this.kv[v] !== ADD) return undefined;
    const c = this.constant(this.bv[v]);
    return c === undefined ? undefined : { base: this.av[v], c };
  }

  /** Operator, operands of an ALU value (for folding through facts). */
  aluParts(v: number): { op: number; a: number; b: number } | undefined {
    if (this.kind[v] !== Kind.Alu) return undefined;
    return { op: this.kv[v], a: this.av[v], b: this.bv[v] };
  }

  neg(a: number): number {
    const c = this.constant(a);
    if (c !== undefined) return this.konst(-c);
    return this.intern(`N${a}`, Kind.Alu, NEG, a, -1, U32);
  }

  /**
   * `a op b`. Never called for a division or modulo by the constant zero (the
   * caller turns that into a trap).
   */
  alu(op: number, a: number, b: number): number {
    const ca = this.constant(a), cb0 = this.constant(b);
    if (ca !== undefined && cb0 !== undefined) {
      const r = foldAlu(op, ca, cb0);
      if (r !== undefined) return this.konst(r);
    }
    // Commutative operators: constant on the right, otherwise the lower number first.
    if (COMMUTATIVE.has(op) && (ca !== undefined || (cb0 === undefined && a > b))) [a, b] = [b, a];
    const cb = this.constant(b);
    if (cb !== undefined) {
      switch (op) {
        case ADD: case OR: case XOR: case LSH: case RSH:
          if (cb === 0) return a;
          break;
        case SUB:
          if (cb === 0) return a;
          return this.alu(ADD, a, this.konst(-cb)); // x - c is x + (-c)
        case MUL:
          if (cb === 1) return a;
          if (cb === 0) return b;
          break;
        case DIV:
          if (cb === 1) return a;
          break;
        case MOD:
          if (cb === 1) return this.konst(0);
          break;
        case AND:
          if (cb === 0) return b;
          if ((this.bitsv[a] & ~cb) === 0) return a; // the mask keeps every bit a can have
          break;
      }
      if (op === OR && cb === U32) return b;
      if ((op === LSH || op === RSH) && cb >= 32) return this.konst(0);
      // Reassociate chains of one operator with constants.
      const p = this.aluParts(a);
      if (p && p.op === op && p.b >= 0) {
        const pc = this.constant(p.b);
        if (pc !== undefined && (op === ADD || op === AND || op === OR || op === XOR)) {
          return this.alu(op, p.a, this.konst(foldAlu(op, pc, cb)!));
        }
      }
    } else if (a === b) {
      if (op === SUB || op === XOR) return this.konst(0);
      if (op === AND || op === OR) return a;
    }
    if (ca === 0 && (op === LSH || op === RSH)) return a; // 0 shifted is 0
    return this.intern(`A${op}:${a}:${b}`, Kind.Alu, op, a, b, this.aluBits(op, a, b));
  }

  private aluBits(op: number, a: number, b: number): number {
    const ba = this.bitsv[a], bb = this.bitsv[b];
    const cb = this.constant(b);
    switch (op) {
      case AND: return (ba & bb) >>> 0;
      case OR: case XOR: return (ba | bb) >>> 0;
      case ADD: return ba + bb <= U32 ? smear(ba + bb) : U32;
      case MUL: return ba * bb <= U32 ? smear(ba * bb) : U32;
      case DIV: return smear(ba);
      case MOD: return cb !== undefined && cb > 0 ? Math.min(smear(ba), smear(cb - 1)) : smear(ba);
      case LSH: return cb !== undefined && cb < 32 && ba * 2 ** cb <= U32 ? (ba << cb) >>> 0 : U32;
      case RSH: return cb !== undefined && cb < 32 ? ba >>> cb : smear(ba);
    }
    return U32;
  }

  // ---------------------------------------------------------------- facts

  /** `v`'s constant, from the table or from an equality fact, folding through ALU values. */
  constOf(v: number, facts: Fact | null, depth = 0): number | undefined {
    const c = this.constant(v);
    if (c !== undefined) return c;
    for (let f = facts; f; f = f.next) {
      if (f.a === v && f.op === JEQ && f.t) {
        const o = this.constant(f.o);
        if (o !== undefined) return o;
      }
    }
    if (depth < 6 && this.kind[v] === Kind.Alu && facts) {
      const op = this.kv[v];
      const a = this.constOf(this.av[v], facts, depth + 1);
      if (a === undefined) return undefined;
      if (op === NEG) return (-a) >>> 0;
      const b = this.constOf(this.bv[v], facts, depth + 1);
      return b === undefined ? undefined : foldAlu(op, a, b);
    }
    return undefined;
  }

  /**
   * The outcome of the test `a OP o` (op: JEQ, JGT, JGE or JSET) given `facts`, or
   * undefined if it cannot be known. Only answers that hold for every value the
   * operands can take, so a decided test never depends on anything not already
   * computed on the way here.
   */
  decide(op: number, a: number, o: number, facts: Fact | null): boolean | undefined {
    const co = this.constOf(o, facts);
    // Tests whose outcome does not depend on A at all.
    if (co !== undefined) {
      if (op === JSET && co === 0) return false;
      if (op === JGE && co === 0) return true;
      if (op === JGT && co === U32) return false;
    }
    if (a === o) {
      if (op === JEQ || op === JGE) return true;
      if (op === JGT) return false;
    }
    const ca = this.constOf(a, facts);
    if (ca !== undefined && co !== undefined) return evalTest(op, ca, co);
    for (let f = facts; f; f = f.next) if (f.a === a && f.op === op && f.o === o) return f.t;
    if (co === undefined) return undefined;

    // Interval and bit reasoning over tests of `a` against constants.
    let lo = 0, hi = U32, zero = 0, one = 0;
    const ne: number[] = [];
    const anyOf: number[] = [];
    for (let f = facts; f; f = f.next) {
      if (f.a !== a) continue;
      const c = this.constant(f.o);
      if (c === undefined) continue;
      switch (f.op) {
        case JEQ: if (!f.t) ne.push(c); break;
        case JGT: if (f.t) lo = Math.max(lo, c + 1); else hi = Math.min(hi, c); break;
        case JGE: if (f.t) lo = Math.max(lo, c); else hi = Math.min(hi, c - 1); break;
        case JSET:
          if (!f.t) zero |= c;
          else if ((c & (c - 1)) === 0) one |= c;
          else anyOf.push(c);
          break;
      }
    }
    zero >>>= 0;
    one >>>= 0;
    switch (op) {
      case JEQ:
        if (co < lo || co > hi || ne.includes(co) || (co & zero) !== 0 || (one & ~co) !== 0) return false;
        if (lo === hi && lo === co) return true;
        return undefined;
      case JGT:
        if (lo > co) return true;
        if (hi <= co) return false;
        return undefined;
      case JGE:
        if (lo >= co) return true;
        if (hi < co) return false;
        return undefined;
      default: // JSET
        if ((co & ~zero) === 0) return false;
        if ((co & one) !== 0) return true;
        for (const m of anyOf) if ((m & ~co) === 0) return true;
        if (hi < 2 ** 32 && hi < (co & -co) >>> 0) return false;
        return undefined;
    }
  }
}

/** The width in bytes of an A-load opcode. */
export function loadWidth(code: number): number {
  const s = code & 0x18;
  return s === W ? 4 : s === H ? 2 : s === B ? 1 : 0;
}
