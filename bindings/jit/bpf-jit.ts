// Classic BPF compiled to WebAssembly: one module per set of programs, run over arena
// slots in place.
//
// The interpreter (assembly/bpf.ts) pays for decoding every instruction of every
// packet. Here each program becomes straight-line WebAssembly with its constants
// inlined, so V8 compiles it to native code once, at registration. The translation is
// exact: for every packet and every captured length a compiled program returns the
// same u32 as the interpreter, including the zero of a rejected packet.
//
// Control flow. The Linux rules admit only forward jumps, so a program is a DAG laid
// out in topological order. Every instruction that is the target of a jump gets a
// WebAssembly `block` ending just before it; all of them open at the function start,
// the farthest target outermost, so they nest and close in program order, and a jump
// is a `br` or `br_if` out of the right number of them. No interpretation loop is left.
//
// Registers. A, X and the scratch words M[] are locals. Locals start at zero like the
// interpreter's A and X; validation guarantees M[k] is stored before it is read, so the
// interpreter's M[] left over from an earlier packet can never be observed either.
//
// Loads. WebAssembly is little-endian and BPF reads network order: words and halves are
// loaded whole and byte-swapped with rotates and masks. Bounds checks are merged. A
// basic block (a run of instructions entered only at its top and left only at its end,
// by a jump or a return) makes one check, at its top, against the largest end offset
// of its absolute loads: every early way out of a block (a failed load, division by a
// zero X) returns 0, and so does the merged check, so rejecting at the top instead of
// at the load is not observable. An indirect load [x+k] needs k+size bytes whatever X
// is, so that part joins the block's check, and what is left at run time is one
// compare of X against buflen-(k+size), which cannot wrap once the block's check holds;
// together they are exactly the interpreter's overflow-safe test. Finally a forward
// dataflow over the DAG carries the captured length every path into a block has
// already proven (the minimum over its predecessors), and a block whose need is already
// proven makes no check at all; in a typical filter only the first block checks.
//
// A module holds `filter_<i>(pkt, buflen, wirelen)` for each program, `classify`,
// which runs a burst of slots through the programs in order (first match wins) without
// leaving WebAssembly, and `verdicts`, program 0's return value for each slot of a
// burst (BpfFilter's compiled run). The burst loops carry the programs' bodies inline
// (a program's returns become branches out of its block) for up to INLINE_PROGRAMS
// programs, and call the filter functions beyond. It imports the arena's shared
// memory, so workers sharing the arena may instantiate it too.

import { NetpdError } from '../errors.js';
import { validateProgram, type BpfInstruction, type BpfProgram } from '../bpf.js';
import {
  LD, LDX, ST, STX, ALU, JMP, RET, W, H, B, IMM, ABS, IND, MEM, LEN, MSH,
  ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, NEG, MOD, XOR, JA, JEQ, JGT, JGE, JSET, SRC_X, RET_A, TAX, TXA,
} from '../filter/opcodes.js';
import { CodeBuilder, ModuleBuilder, type MemoryLimits } from './wasm.js';
import { burstLoop, checkBurstLayout, type BurstLayout } from './burst.js';

export type { MemoryLimits } from './wasm.js';

/** A compiled program: `pkt` is the address of the packet's bytes. The u32 result arrives as a signed i32: apply >>> 0. */
export type BpfJitFilter = (pkt: number, buflen: number, wirelen: number) => number;

/** The exports of a module made by bpfModuleBytes. */
export interface BpfModuleExports {
  /**
   * For each of the n u32 slot indices at address `slots`, writes to the u32 at
   * results + 4i the index of the first program that returns nonzero for that slot's
   * packet, or the number of programs when none does. Returns how many packets some
   * program accepted. Slot indices must be below the arena's slot count (one whose
   * metadata lies past the end of memory traps with a WebAssembly.RuntimeError).
   */
  classify(slots: number, n: number, results: number): number;
  /** For each slot, program 0's return value (0 = reject); returns how many were accepted. Absent when there are no programs. */
  verdicts?(slots: number, n: number, out: number): number;
  readonly [filter: `filter_${number}`]: BpfJitFilter;
}

/**
 * The binary of one module holding every program of `programs` (see BpfModuleExports).
 * Programs are validated with the kernel's rules first: throws EBADPROG naming the
 * program and instruction, EINVAL for a layout that is not u32 addresses.
 */
export function bpfModuleBytes(programs: readonly BpfProgram[], layout: BurstLayout, memory: MemoryLimits): Uint8Array<ArrayBuffer> {
  checkBurstLayout(layout);
  const mod = new ModuleBuilder({ memory });
  programs.forEach((program, i) => {
    try {
      validateProgram(program);
    } catch (e) {
      if (!(e instanceof NetpdError)) throw e;
      throw new NetpdError(e.code, `program ${i}: ${e.message.slice(e.code.length + 2)}`, { cause: e, details: { ...e.details, program: i } });
    }
    mod.addFunction(compileProgram(program), `filter_${i}`);
  });
  mod.addFunction(classifyLoop(layout, programs), 'classify');
  if (programs.length > 0) mod.addFunction(verdictsLoop(layout, programs[0]), 'verdicts');
  return mod.bytes();
}

/** Compiles the module of bpfModuleBytes synchronously (a registration-time cost of well under a millisecond for typical filters). */
export function compileBpfModule(programs: readonly BpfProgram[], layout: BurstLayout, memory: MemoryLimits): WebAssembly.Module {
  return new WebAssembly.Module(bpfModuleBytes(programs, layout, memory));
}

/** As compileBpfModule, compiling off the main thread. */
export function compileBpfModuleAsync(programs: readonly BpfProgram[], layout: BurstLayout, memory: MemoryLimits): Promise<WebAssembly.Module> {
  return WebAssembly.compile(bpfModuleBytes(programs, layout, memory));
}

/** Instantiates a compiled module over the arena's memory. */
export function instantiateBpfModule(module: WebAssembly.Module, memory: WebAssembly.Memory): BpfModuleExports {
  return new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as BpfModuleExports;
}

/**
 * Rule sets up to this size are inlined into the burst loop (no call per program and
 * packet); larger ones call their filter functions, so no one function grows so large
 * that V8's optimizing compiler slows down registration.
 */
const INLINE_PROGRAMS = 16;

// Parameters of every filter function.
const PKT = 0, BUFLEN = 1, WIRELEN = 2;
const U32_END = 2 ** 32;

/** Bytes a load at [k] or [x+k] needs captured whatever X is (k + size); 0 for an instruction that loads nothing. */
function loadEnd(ins: BpfInstruction): number {
  switch (ins.code) {
    case LD | W | ABS: case LD | W | IND: return ins.k + 4;
    case LD | H | ABS: case LD | H | IND: return ins.k + 2;
    case LD | B | ABS: case LD | B | IND: case LDX | B | MSH: return ins.k + 1;
    default: return 0;
  }
}

const classOf = (code: number) => code & 0x07;
const isJump = (code: number) => classOf(code) === JMP;
const isReturn = (code: number) => classOf(code) === RET;

/** Successors of a jump, as absolute instruction indices. */
function jumpTargets(pc: number, ins: BpfInstruction): number[] {
  return ins.code === (JMP | JA) ? [pc + 1 + ins.k] : [pc + 1 + ins.jt, pc + 1 + ins.jf];
}

/**
 * The plan for one program: which instructions can run, where basic blocks start,
 * and the captured length each block must check at its top (0: none).
 */
interface Plan {
  reachable: boolean[];
  leader: boolean[];
  check: number[];
  /**
   * Leaders of blocks that can never run to their end: they need more than 2^32-1 bytes,
   * or every path into them came through such a block. They compile to a rejection.
   */
  dead: boolean[];
  /** Instructions some emitted branch jumps to (each gets a WebAssembly block), ascending. */
  targets: number[];
}

function planOf(prog: BpfProgram): Plan {
  const n = prog.length;
  const reachable = new Array<boolean>(n).fill(false);
  const leader = new Array<boolean>(n).fill(false);
  reachable[0] = leader[0] = true;
  const targets = new Set<number>();
  for (let pc = 0; pc < n; pc++) {
    if (!reachable[pc]) continue;
    const { code } = prog[pc];
    if (isReturn(code)) continue;
    if (!isJump(code)) {
      reachable[pc + 1] = true;
      continue;
    }
    for (const t of jumpTargets(pc, prog[pc])) {
      reachable[t] = leader[t] = true;
      if (t > pc + 1) targets.add(t);
    }
  }
  // Forward dataflow in program order (a topological order): proven[pc] is the captured
  // length every path into leader pc has already checked.
  const proven = new Array<number>(n).fill(Infinity);
  proven[0] = 0;
  const check = new Array<number>(n).fill(0);
  const dead = new Array<boolean>(n).fill(false);
  for (let start = 0; start < n; start++) {
    if (!reachable[start]) continue;
    let end = start;
    let need = loadEnd(prog[start]);
    while (!isReturn(prog[end].code) && !isJump(prog[end].code) && !leader[end + 1]) need = Math.max(need, loadEnd(prog[++end]));
    if (need > proven[start]) check[start] = need;
    const out = Math.max(proven[start], need);
    dead[start] = out >= U32_END;
    const last = prog[end];
    const next = isJump(last.code) ? jumpTargets(end, last) : isReturn(last.code) ? [] : [end + 1];
    for (const t of next) proven[t] = Math.min(proven[t], out);
    start = end;
  }
  return { reachable, leader, check, dead, targets: [...targets].sort((a, b) => a - b) };
}

interface Registers {
  /** Locals holding the packet's address, captured length and wire length. */
  pkt: number;
  buflen: number;
  wirelen: number;
  A: number;
  X: number;
  /** A temporary for byte swaps. */
  T: number;
  /** The local holding M[k]. */
  mem(k: number): number;
  /** The relative depth of the branch to instruction `target`. */
  depth(target: number): number;
  /** Leaves the program with the u32 on the stack as its verdict. */
  exit(c: CodeBuilder): void;
}

/** Emits one program as `(pkt, buflen, wirelen) -> u32`. */
function compileProgram(prog: BpfProgram): CodeBuilder {
  const c = new CodeBuilder(['i32', 'i32', 'i32'], ['i32']);
  emitProgram(c, prog, { pkt: PKT, buflen: BUFLEN, wirelen: WIRELEN }, (code) => { code.return(); });
  return c;
}

/**
 * Emits a program's body into `c`, reading the packet from the locals `io`; every way
 * out leaves the verdict on the stack and calls `exit` (a return, or — inlined into a
 * burst loop — a branch out of the block that holds the body).
 */
function emitProgram(c: CodeBuilder, prog: BpfProgram, io: { pkt: number; buflen: number; wirelen: number }, exit: (c: CodeBuilder) => void): void {
  const M = new Map<number, number>();
  const plan = planOf(prog);
  const { reachable, leader, targets } = plan;
  const exitDepth = c.openBlocks;

  // One block per jump target, the farthest outermost; position[t] is its place in the
  // stack of open blocks, from which a branch's relative depth follows.
  const position = new Map<number, number>();
  for (let i = targets.length - 1; i >= 0; i--) {
    c.block();
    position.set(targets[i], c.openBlocks - 1);
  }
  const r: Registers = {
    ...io,
    A: c.addLocal('i32'),
    X: c.addLocal('i32'),
    T: c.addLocal('i32'),
    mem: (k) => {
      let local = M.get(k);
      if (local === undefined) M.set(k, (local = c.addLocal('i32')));
      return local;
    },
    depth: (target) => c.openBlocks - 1 - position.get(target)!,
    exit,
  };
  // The interpreter starts every packet with A = X = 0 (M[] is always stored before it is read).
  if (exitDepth > 0) c.i32Const(0).localSet(r.A).i32Const(0).localSet(r.X);

  let returned = false;   // the last instruction emitted was a return
  let skip = false;       // inside a dead block
  for (let pc = 0; pc < prog.length; pc++) {
    if (position.has(pc)) c.end();
    if (!reachable[pc]) continue;
    if (leader[pc]) {
      skip = plan.dead[pc];
      if (skip) {
        reject(c, r);
        returned = true;
      } else if (plan.check[pc] > 0) {
        c.localGet(r.buflen).i32Const(plan.check[pc]).i32LtU().if();
        reject(c, r);
        c.end();
      }
    }
    if (!skip) returned = emitInstruction(c, prog[pc], pc, r);
  }
  // Every path leaves; the engine's validator only needs to be told when the last
  // instruction it sees is not a way out.
  if (!returned) c.unreachable();
}

function reject(c: CodeBuilder, r: Registers): void {
  c.i32Const(0);
  r.exit(c);
}

/** Emits one instruction; returns true when it was a return. */
function emitInstruction(c: CodeBuilder, ins: BpfInstruction, pc: number, r: Registers): boolean {
  const { code, k } = ins;
  const { A, X } = r;
  switch (code) {
    case RET: c.i32Const(k); r.exit(c); return true;
    case RET_A: c.localGet(A); r.exit(c); return true;
    case LD | W | ABS: c.localGet(r.pkt).i32Load(k, 0); swap32(c, r.T); c.localSet(A); break;
    case LD | H | ABS: c.localGet(r.pkt).i32Load16U(k, 0); swap16(c, r.T); c.localSet(A); break;
    case LD | B | ABS: c.localGet(r.pkt).i32Load8U(k).localSet(A); break;
    case LD | W | IND: indirect(c, k, 4, r); c.i32Load(k, 0); swap32(c, r.T); c.localSet(A); break;
    case LD | H | IND: indirect(c, k, 2, r); c.i32Load16U(k, 0); swap16(c, r.T); c.localSet(A); break;
    case LD | B | IND: indirect(c, k, 1, r); c.i32Load8U(k).localSet(A); break;
    case LDX | B | MSH: c.localGet(r.pkt).i32Load8U(k).i32Const(0xf).i32And().i32Const(2).i32Shl().localSet(X); break;
    case LD | W | LEN: c.localGet(r.wirelen).localSet(A); break;
    case LDX | W | LEN: c.localGet(r.wirelen).localSet(X); break;
    case LD | IMM: c.i32Const(k).localSet(A); break;
    case LDX | IMM: c.i32Const(k).localSet(X); break;
    case LD | MEM: c.localGet(r.mem(k)).localSet(A); break;
    case LDX | MEM: c.localGet(r.mem(k)).localSet(X); break;
    case ST: c.localGet(A).localSet(r.mem(k)); break;
    case STX: c.localGet(X).localSet(r.mem(k)); break;
    case TAX: c.localGet(A).localSet(X); break;
    case TXA: c.localGet(X).localSet(A); break;
    case ALU | NEG: c.i32Const(0).localGet(A).i32Sub().localSet(A); break;
    case JMP | JA: if (k > 0) c.br(r.depth(pc + 1 + k)); break;
    default:
      if (isJump(code)) jump(c, ins, pc, r);
      else alu(c, code, k, r);
  }
  return false;
}

/**
 * Leaves pkt + X on the stack for a load of `size` bytes at [x + k], after rejecting
 * when X > buflen - (k + size). The block's check has proven buflen >= k + size, so the
 * subtraction cannot wrap and the address stays inside the captured bytes.
 */
function indirect(c: CodeBuilder, k: number, size: number, r: Registers): void {
  c.localGet(r.X).localGet(r.buflen).i32Const(k + size).i32Sub().i32GtU().if();
  reject(c, r);
  c.end();
  c.localGet(r.pkt).localGet(r.X).i32Add();
}

/** Network-order word from the little-endian one on the stack: rotate each byte pair into place. */
function swap32(c: CodeBuilder, t: number): void {
  c.localTee(t).i32Const(8).i32Rotl().i32Const(0x00ff00ff).i32And();
  c.localGet(t).i32Const(8).i32Rotr().i32Const(0xff00ff00).i32And().i32Or();
}

function swap16(c: CodeBuilder, t: number): void {
  c.localTee(t).i32Const(8).i32Shl().localGet(t).i32Const(8).i32ShrU().i32Or().i32Const(0xffff).i32And();
}

function jump(c: CodeBuilder, ins: BpfInstruction, pc: number, r: Registers): void {
  const { jt, jf } = ins;
  if (jt === jf) {
    if (jt > 0) c.br(r.depth(pc + 1 + jt));
    return;
  }
  // With jt = 0 the true edge falls through: branch on the negated condition.
  condition(c, ins, r, jt === 0);
  if (jt === 0) {
    c.brIf(r.depth(pc + 1 + jf));
    return;
  }
  c.brIf(r.depth(pc + 1 + jt));
  if (jf > 0) c.br(r.depth(pc + 1 + jf));
}

/** Pushes the jump's condition (A against k or X), nonzero when true, or when false if `negate`. */
function condition(c: CodeBuilder, ins: BpfInstruction, r: Registers, negate: boolean): void {
  c.localGet(r.A);
  if (ins.code & SRC_X) c.localGet(r.X);
  else c.i32Const(ins.k);
  switch (ins.code & 0xf0) {
    case JEQ: negate ? c.i32Ne() : c.i32Eq(); break;
    case JGT: negate ? c.i32LeU() : c.i32GtU(); break;
    case JGE: negate ? c.i32LtU() : c.i32GeU(); break;
    case JSET: c.i32And(); if (negate) c.i32Eqz(); break;
    default: throw new NetpdError('EBADPROG', `jump opcode 0x${ins.code.toString(16)} reached the JIT unvalidated`);
  }
}

/** A = A op k, or A op X; division by a zero X and shifts by X >= 32 as the interpreter. */
function alu(c: CodeBuilder, code: number, k: number, r: Registers): void {
  const { A, X } = r;
  const byX = (code & SRC_X) !== 0;
  const operation = code & 0xf0;
  if (byX && (operation === DIV || operation === MOD)) {
    c.localGet(X).i32Eqz().if();
    reject(c, r);
    c.end();
  }
  c.localGet(A);
  if (byX) c.localGet(X);
  else c.i32Const(k);
  switch (operation) {
    case ADD: c.i32Add(); break;
    case SUB: c.i32Sub(); break;
    case MUL: c.i32Mul(); break;
    case DIV: c.i32DivU(); break;
    case MOD: c.i32RemU(); break;
    case AND: c.i32And(); break;
    case OR: c.i32Or(); break;
    case XOR: c.i32Xor(); break;
    // WebAssembly shifts count modulo 32; BPF's by X >= 32 give 0 (constants are below 32).
    case LSH: c.i32Shl(); break;
    case RSH: c.i32ShrU(); break;
    default: throw new NetpdError('EBADPROG', `opcode 0x${code.toString(16)} reached the JIT unvalidated`);
  }
  if (byX && (operation === LSH || operation === RSH)) c.i32Const(0).localGet(X).i32Const(32).i32LtU().select();
  c.localSet(A);
}

/**
 * The burst functions. `classify`: for each slot, the index of the first accepting
 * program (count when none). `verdicts`: for each slot, program 0's return value.
 */
function classifyLoop(L: BurstLayout, programs: readonly BpfProgram[]): CodeBuilder {
  const count = programs.length;
  return burstLoop(L, {
    wireLen: true,
    packet: (c, { pkt, buflen, wirelen }) => {
      c.block('i32');
      const first = c.openBlocks;
      for (let i = 0; i < count; i++) {
        if (count <= INLINE_PROGRAMS) {
          // Inlined: the verdict comes out of the program's block; nonzero carries i out.
          c.block('i32');
          const own = c.openBlocks;
          emitProgram(c, programs[i], { pkt, buflen, wirelen }, (code) => { code.br(code.openBlocks - own); });
          c.end().if().i32Const(i).br(c.openBlocks - first).end();
        } else {
          // br_if carries the program's index out when its verdict is nonzero.
          c.i32Const(i).localGet(pkt).localGet(buflen).localGet(wirelen).call(i).brIf(0).drop();
        }
      }
      c.i32Const(count).end();
    },
    matched: (c, result) => { c.localGet(result).i32Const(count).i32LtU(); },
  });
}

function verdictsLoop(L: BurstLayout, program: BpfProgram): CodeBuilder {
  return burstLoop(L, {
    wireLen: true,
    packet: (c, io) => {
      // The one program inlined: its ways out branch out of this block with the verdict.
      c.block('i32');
      const outer = c.openBlocks;
      emitProgram(c, program, io, (code) => { code.br(code.openBlocks - outer); });
      c.end();
    },
    matched: (c, result) => { c.localGet(result).i32Const(0).i32Ne(); },
  });
}
