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

import { ADD, AND, DIV, H, JEQ, JGE, JGT, JSET, LSH, MOD, MUL, NEG, OR, RSH, SUB, W, XOR, type Fact } from './optimize-cfg.js';

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

function hash(kind: number, k: number, a: number, b: number): number {
  let h = Math.imul(kind + 1, 0x9e3779b1) ^ Math.imul(k | 0, 0x85ebca6b) ^ Math.imul(a + 7, 0xc2b2ae35) ^ Math.imul(b + 11, 0x27d4eb2f);
  h ^= h >>> 15;
  return Math.imul(h, 0x2c1b3c6d) ^ (h >>> 12);
}

export class ValueTable {
  /**
   * Canonical numbering folds and normalizes (the second pass). Literal numbering
   * (the first pass, as libpcap's first loop) numbers a computation as written:
   * `[x+14]` with X = 6 is not `[20]`, `and x` with X = 0x1fff is not `and #0x1fff`,
   * `#2 + #3` is not 5; only `ld #k` values are constants.
   */
  canonical = false;

  /** Forgets every value (a table serves one round at a time). */
  reset(canonical: boolean): void {
    this.canonical = canonical;
    this.slots.fill(-1);
    this.kind.length = this.kv.length = this.av.length = this.bv.length = this.bitsv.length = 0;
  }

  /** Open-addressing hash table of value numbers, keyed by (kind, kv, av, bv). */
  private slots = new Int32Array(128).fill(-1);
  private readonly kind: Kind[] = [];
  /** Const: the constant. Load: the offset k. Alu: the operator. */
  private readonly kv: number[] = [];
  /** Load: the instruction code. Alu: the left operand. */
  private readonly av: number[] = [];
  /** Load: X's value (IND) or -1. Alu: the right operand (-1 for neg). */
  private readonly bv: number[] = [];
  /** Bits that may be set in the value (an upper bound, used for address arithmetic and masks). */
  private readonly bitsv: number[] = [];

  /** The number of the value (kind, k, a, b), made if new. */
  private intern(kind: Kind, k: number, a: number, b: number, bits: number): number {
    let mask = this.slots.length - 1;
    let i = hash(kind, k, a, b) & mask;
    for (let v = this.slots[i]; v !== -1; v = this.slots[i]) {
      if (this.kind[v] === kind && this.kv[v] === k && this.av[v] === a && this.bv[v] === b) return v;
      i = (i + 1) & mask;
    }
    const v = this.kind.length;
    this.kind.push(kind);
    this.kv.push(k);
    this.av.push(a);
    this.bv.push(b);
    this.bitsv.push(bits >>> 0);
    this.slots[i] = v;
    if (2 * this.kind.length > this.slots.length) {
      this.slots = new Int32Array(this.slots.length * 2).fill(-1);
      mask = this.slots.length - 1;
      for (let w = 0; w < this.kind.length; w++) {
        let j = hash(this.kind[w], this.kv[w], this.av[w], this.bv[w]) & mask;
        while (this.slots[j] !== -1) j = (j + 1) & mask;
        this.slots[j] = w;
      }
    }
    return v;
  }

  konst(c: number): number {
    c >>>= 0;
    return this.intern(Kind.Const, c, -1, -1, c);
  }

  /** The constant, or undefined. */
  constant(v: number): number | undefined {
    return this.kind[v] === Kind.Const ? this.kv[v] : undefined;
  }

  /** A packet load into A: `code` is its LD opcode; `x` is X's value for indirect loads, else -1. */
  load(code: number, k: number, x: number): number {
    k >>>= 0;
    const size = code & 0x18;
    const width = size === W ? 4 : size === H ? 2 : 1;
    if (x >= 0 && this.canonical) {
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
    return this.intern(Kind.Load, k, code, x, bits);
  }

  /** `ldxb 4*([k]&0xf)`: the same value as ((ldb [k]) & 0xf) << 2. */
  msh(k: number): number {
    if (!this.canonical) return this.intern(Kind.Load, k, 0xb1, -1, 0x3c);
    const byte = this.load(0x30 /* LD|B|ABS */, k, -1);
    return this.op(LSH, this.op(AND, byte, this.konst(0xf)), this.konst(2));
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

  /** If `v` is an absolute packet load's value, that load's opcode and offset (for re-reading it). */
  absLoad(v: number): { code: number; k: number } | undefined {
    if (this.kind[v] !== Kind.Load || this.bv[v] !== -1 || (this.av[v] & 0xe0) !== 0x20) return undefined;
    return { code: this.av[v], k: this.kv[v] };
  }

  len(): number {
    return this.intern(Kind.Len, 0, -1, -1, U32);
  }

  isLen(v: number): boolean {
    return this.kind[v] === Kind.Len;
  }

  /**
   * The unknown value atom `atom` holds on entry to block `block` when its
   * predecessors disagree, and that has no bits outside `bits` (each round asks once).
   */
  phi(block: number, atom: number, bits = U32): number {
    return this.intern(Kind.Phi, 0, block, atom, bits);
  }

  /** Bits that may be set in `v`. */
  bits(v: number): number {
    return this.bitsv[v];
  }

  /** Likewise where local jumps meet, before statement `at` of block `block`. */
  localPhi(block: number, at: number, atom: number): number {
    return this.intern(Kind.Phi, at + 1, block, atom, U32);
  }

  /** Whether `v` is such an unknown value. */
  isPhi(v: number): boolean {
    return this.kind[v] === Kind.Phi;
  }

  /** A scratch word never stored (reading it is invalid, so it matches nothing). */
  undef(atom: number): number {
    return this.intern(Kind.Undef, 0, -1, atom, U32);
  }

  isUndef(v: number): boolean {
    return this.kind[v] === Kind.Undef;
  }

  /** If `v` is `base + c` (c a constant), those; used to fold an index into a load offset. */
  addend(v: number): { base: number; c: number } | undefined {
    if (this.kind[v] !== Kind.Alu || this.kv[v] !== ADD) return undefined;
    const c = this.constant(this.bv[v]);
    return c === undefined ? undefined : { base: this.av[v], c };
  }

  /** Operator and operands of an ALU value. */
  private aluParts(v: number): { op: number; a: number; b: number } | undefined {
    if (this.kind[v] !== Kind.Alu) return undefined;
    return { op: this.kv[v], a: this.av[v], b: this.bv[v] };
  }

  neg(a: number): number {
    const c = this.constant(a);
    if (c !== undefined && this.canonical) return this.konst(-c);
    return this.intern(Kind.Alu, NEG, a, -1, U32);
  }

  /**
   * `a op b` for the ALU instruction `code` (its operator and whether b came
   * from X). Never called for a division or modulo by the constant zero (the
   * caller turns that into a trap).
   */
  alu(code: number, a: number, b: number): number {
    // Literally: keyed by the whole opcode, so `and x` and `and #k` differ.
    if (!this.canonical) return this.intern(Kind.Alu, code | 0x100, a, b, U32);
    return this.op(code & 0xf0, a, b);
  }

  private op(op: number, a: number, b: number): number {
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
          return this.op(ADD, a, this.konst(-cb)); // x - c is x + (-c)
        case MUL:
          if (cb === 1) return a;
          if (cb === 0) return b;
          break;
        case DIV:
          if (cb === 1) return a;
          break;
        case AND:
          if (cb === 0) return b;
          if ((this.bitsv[a] & ~cb) === 0) return a; // the mask keeps every bit a can have
          break;
      }
      if ((op === LSH || op === RSH) && cb >= 32) return this.konst(0);
      // Reassociate chains of one operator with constants.
      const p = this.aluParts(a);
      if (p && p.op === op && p.b >= 0) {
        const pc = this.constant(p.b);
        if (pc !== undefined && (op === ADD || op === AND || op === OR || op === XOR)) {
          return this.op(op, p.a, this.konst(foldAlu(op, pc, cb)!));
        }
      }
    } else if (a === b && (op === AND || op === OR)) {
      return a;
    }
    if (ca === 0 && (op === LSH || op === RSH)) return a; // 0 shifted is 0
    return this.intern(Kind.Alu, op, a, b, this.aluBits(op, a, b));
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

  /**
   * The outcome of the test `a OP o` (op: JEQ, JGT, JGE or JSET) given `facts`, or
   * undefined if it cannot be known.
   *
   * Deliberately exactly as much as libpcap's optimizer knows (opt_peep and
   * fold_edge): constants; the same test on an edge every path went through; a
   * `jeq #c` known true makes `jeq #d` false; `jset #0` is false. Knowing more (that
   * `A == 0x800` makes `A > 1500` true, that `x == x`) would be right, but it decides
   * branches libpcap cannot, which merges paths it keeps apart and so drops loads
   * libpcap keeps: the two optimized programs would then disagree on truncated
   * packets.
   */
  decide(op: number, a: number, o: number, facts: Fact | null): boolean | undefined {
    const ca = this.constant(a), co = this.constant(o);
    if (op === JSET && co === 0) return false;
    if (ca !== undefined && co !== undefined) return evalTest(op, ca, co);
    for (let f = facts; f; f = f.next) {
      if (f.a !== a || f.op !== op) continue;
      if (f.o === o) return f.t;
      // A == c on this path; a test against another constant is false.
      if (op === JEQ && f.t && co !== undefined && this.constant(f.o) !== undefined) return false;
    }
    return undefined;
  }
}
