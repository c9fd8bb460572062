// Classic BPF programs on the control plane: parsing tcpdump's -ddd text, writing a
// program into arena memory, validating it with the kernel's rules (in the core) and
// turning the core's verdict into an error that names the instruction and the rule.
// Running happens in the core, a burst per call (BpfFilter.run).

import { NetpdError } from './errors.js';
import { Arena } from './arena.js';
import { compileBpfModule, instantiateBpfModule } from './jit/bpf-jit.js';
import { burstLayout, arenaMemoryLimits } from './jit/burst.js';

/** One classic BPF instruction, as struct sock_filter / tcpdump -dd. */
export interface BpfInstruction {
  code: number;
  jt: number;
  jf: number;
  k: number;
}
export type BpfProgram = readonly BpfInstruction[];

export const BPF_MAXINSNS = 4096;

const RULES: Record<number, string> = {
  1: 'a program must have 1 to 4096 instructions',
  2: 'unknown or unsupported opcode',
  3: 'division or modulo by constant zero',
  4: 'shift by a constant of 32 or more',
  5: 'scratch memory index outside 0..15',
  6: 'jump target outside the program',
  7: 'unknown ancillary load (k at or above SKF_AD_OFF)',
  8: 'the last instruction must be a return',
  9: 'scratch memory word read before it is stored on every path',
};

/** Parses `tcpdump -ddd` output: a count line, then `code jt jf k` per line (decimal). */
export function parseDdd(text: string): BpfInstruction[] {
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l.length > 0);
  if (lines.length === 0) throw new NetpdError('EBADPROG', 'empty -ddd program text');
  const count = parseUint(lines[0], 0xffffffff, 'instruction count', 1);
  if (count !== lines.length - 1) {
    throw new NetpdError('EBADPROG', `-ddd text declares ${count} instructions but has ${lines.length - 1}`, { details: { line: 1 } });
  }
  const program: BpfInstruction[] = [];
  for (let i = 1; i < lines.length; i++) {
    const f = lines[i].split(/\s+/);
    if (f.length !== 4) throw new NetpdError('EBADPROG', `line ${i + 1}: expected "code jt jf k", got "${lines[i]}"`, { details: { line: i + 1 } });
    program.push({
      code: parseUint(f[0], 0xffff, 'code', i + 1),
      jt: parseUint(f[1], 0xff, 'jt', i + 1),
      jf: parseUint(f[2], 0xff, 'jf', i + 1),
      k: parseUint(f[3], 0xffffffff, 'k', i + 1),
    });
  }
  return program;
}

function parseUint(s: string, max: number, what: string, line: number): number {
  if (!/^\d+$/.test(s) || Number(s) > max) {
    throw new NetpdError('EBADPROG', `line ${line}: ${what} "${s}" is not an integer in 0..${max}`, { details: { line } });
  }
  return Number(s);
}

/** Formats a program the way `tcpdump -ddd` prints it. */
export function formatDdd(program: BpfProgram): string {
  return `${program.length}\n${program.map((i) => `${i.code} ${i.jt} ${i.jf} ${i.k}`).join('\n')}\n`;
}

/** Accepts a program as instructions or as -ddd text. */
export function toProgram(program: BpfProgram | string): BpfProgram {
  return typeof program === 'string' ? parseDdd(program) : program;
}

/** True when `text` looks like -ddd output rather than a filter expression. */
export function isDddText(text: string): boolean {
  return /^\s*\d+\s*\r?\n(\s*\d+\s+\d+\s+\d+\s+\d+\s*(\r?\n|$))*\s*$/.test(text);
}

/**
 * Writes `program` at `addr` in the arena, validates it with the kernel's rules
 * (`masks` is 2 * 4096 bytes of scratch) and decodes it for the interpreter.
 * Throws EBADPROG naming the instruction and the rule it breaks.
 */
export function loadProgram(arena: Arena, addr: number, masks: number, program: BpfProgram): number {
  const len = program.length;
  if (!Array.isArray(program) || len < 1 || len > BPF_MAXINSNS) {
    throw new NetpdError('EBADPROG', `program has ${len} instructions; ${RULES[1]}`, { details: { rule: RULES[1] } });
  }
  const view = arena.view;
  for (let pc = 0; pc < len; pc++) {
    const ins = program[pc];
    if (!ins || !isField(ins.code, 0xffff) || !isField(ins.jt, 0xff) || !isField(ins.jf, 0xff) || !isField(ins.k, 0xffffffff)) {
      throw new NetpdError('EBADPROG', `instruction ${pc}: fields must be code 0..65535, jt and jf 0..255, k 0..2^32-1`, { details: { instruction: pc } });
    }
    const at = addr + pc * 8;
    view.setUint16(at, ins.code, true);
    view.setUint8(at + 2, ins.jt);
    view.setUint8(at + 3, ins.jf);
    view.setUint32(at + 4, ins.k, true);
  }
  const verdict = arena.core.bpf_validate(addr, len, masks);
  if (verdict !== 0) {
    const rule = verdict >>> 16;
    const pc = verdict & 0xffff;
    const ins = program[pc];
    throw new NetpdError('EBADPROG', `instruction ${pc} (${describe(ins)}): ${RULES[rule] ?? `rule ${rule}`}`, {
      details: { instruction: pc, rule: RULES[rule] ?? String(rule) },
    });
  }
  arena.core.bpf_decode(addr, len);
  return len;
}

function isField(v: unknown, max: number): boolean {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max;
}

function describe(ins: BpfInstruction): string {
  return `code 0x${ins.code.toString(16).padStart(2, '0')} jt ${ins.jt} jf ${ins.jf} k ${ins.k}`;
}

export interface BpfFilterOptions {
  /**
   * Compile the program to WebAssembly (bindings/jit/bpf-jit.ts) now, synchronously —
   * a fraction of a millisecond for a typical filter — and run that instead of the
   * interpreter. Default false.
   */
  jit?: boolean;
}

/**
 * A validated program held in an arena, run over bursts of slots in one call, by the
 * core's interpreter or by the program compiled to WebAssembly. Results are the
 * program's return values (0 = reject).
 */
export class BpfFilter {
  readonly arena: Arena;
  readonly length: number;
  private readonly prog: number;
  private readonly mem: number;
  private readonly compiled: ((slots: number, n: number, out: number) => number) | null;

  constructor(arena: Arena, program: BpfProgram | string, options: BpfFilterOptions = {}) {
    this.arena = arena;
    const insns = toProgram(program);
    const scratch = arena.bpfScratch();
    loadProgram(arena, scratch.staging, scratch.masks, insns);
    this.prog = arena.reserve(insns.length * 8, 8);
    arena.bytes.copyWithin(this.prog, scratch.staging, scratch.staging + insns.length * 8);
    this.mem = scratch.mem;
    this.length = insns.length;
    this.compiled = options.jit ? compiledVerdicts(arena, insns) : null;
  }

  /** True when run() uses the program compiled to WebAssembly. */
  get jit(): boolean {
    return this.compiled !== null;
  }

  /** Runs over vec[0..n), writing each verdict to out[i] (a burst vector). Returns how many were accepted. */
  run(vec: Uint32Array, n: number, out: Uint32Array): number {
    const a = this.arena;
    if (out.length < n) throw new NetpdError('EINVAL', `result vector holds ${out.length} entries, burst has ${n}`);
    if (this.compiled) return this.compiled(a.addressOf(vec, n), n, a.addressOf(out, n));
    return a.core.bpf_run_burst(a.base, this.prog, a.addressOf(vec, n), n, a.addressOf(out, n), this.mem);
  }
}

function compiledVerdicts(arena: Arena, program: BpfProgram): (slots: number, n: number, out: number) => number {
  const module = compileBpfModule([program], burstLayout(arena), arenaMemoryLimits(arena));
  return instantiateBpfModule(module, arena.memory).verdicts!;
}

// A small private arena for checking and running programs outside any dispatcher.
let scratch: { arena: Arena; prog: number; masks: number; mem: number; vec: Uint32Array; out: Uint32Array } | undefined;
function scratchArena() {
  if (!scratch) {
    const arena = Arena.create({ slotSize: 65536, slotCount: 1, controlBytes: 128 * 1024 });
    const s = arena.bpfScratch();
    scratch = { arena, prog: s.staging, masks: s.masks, mem: s.mem, vec: arena.burstVector(1), out: arena.burstVector(1) };
  }
  return scratch;
}

/** Checks a program with the kernel's rules without keeping it. Throws EBADPROG. */
export function validateProgram(program: BpfProgram | string): void {
  const s = scratchArena();
  loadProgram(s.arena, s.prog, s.masks, toProgram(program));
}

/** A packet for runFilter: its captured bytes and, if it was cut short, its length on the wire. */
export interface FilterInput {
  data: Uint8Array;
  wireLen?: number;
}

/**
 * Validates `program` and runs it over each packet (one at a time: a convenience for
 * tools and tests; dispatchers and BpfFilter run bursts). Returns each verdict
 * (0 = reject, otherwise the snap length the program returned).
 */
export function runFilter(program: BpfProgram | string, packets: Iterable<Uint8Array | FilterInput>): number[] {
  const s = scratchArena();
  loadProgram(s.arena, s.prog, s.masks, toProgram(program));
  const a = s.arena;
  a.allocBurst(s.vec, 1);
  const slot = s.vec[0];
  const verdicts: number[] = [];
  try {
    for (const p of packets) {
      const data = p instanceof Uint8Array ? p : p.data;
      const wireLen = p instanceof Uint8Array ? data.length : (p.wireLen ?? data.length);
      if (data.length > a.slotSize) throw new NetpdError('EINVAL', `a packet of ${data.length} bytes exceeds the 65536-byte limit`);
      a.bytes.set(data, a.dataOffset(slot));
      a.setPacket(slot, data.length, wireLen, 0, 0, 0);
      s.vec[0] = slot;
      a.core.bpf_run_burst(a.base, s.prog, s.vec.byteOffset, 1, s.out.byteOffset, s.mem);
      verdicts.push(s.out[0]);
    }
  } finally {
    s.vec[0] = slot;
    a.freeBurst(s.vec, 1);
  }
  return verdicts;
}
