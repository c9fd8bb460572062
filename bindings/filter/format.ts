// The three ways tcpdump prints a classic BPF program, character for character:
//   -d    one line per instruction in human-readable form (libpcap's bpf_image()),
//   -dd   C array initializers "{ 0x28, 0, 0, 0x0000000c },",
//   -ddd  the instruction count, then "code jt jf k" in decimal.
// All three are libpcap's bpf_dump() (tcpdump calls it); every line ends in "\n", including
// the last. The -d form covers every opcode, including those tcpdump never emits (ld len,
// txa, mod, xor, neg, jset x, ...), Linux ancillary loads, which bpf_image() names
// ("ldh [type]"), and codes it does not know ("unimp 0x..."). Checked against tcpdump's own
// output and libpcap's bpf_dump() on synthetic programs (test/filter-format.test.ts).

import type { BpfInstruction } from '../bpf.js';
import { NetpdError } from '../errors.js';

export type ProgramForm = 'd' | 'dd' | 'ddd';

// Instruction classes, sizes, modes, operations and sources (struct sock_filter / bpf.h).
const BPF_LD = 0x00, BPF_LDX = 0x01, BPF_ST = 0x02, BPF_STX = 0x03, BPF_ALU = 0x04, BPF_JMP = 0x05, BPF_RET = 0x06, BPF_MISC = 0x07;
const BPF_W = 0x00, BPF_H = 0x08, BPF_B = 0x10;
const BPF_IMM = 0x00, BPF_ABS = 0x20, BPF_IND = 0x40, BPF_MEM = 0x60, BPF_LEN = 0x80, BPF_MSH = 0xa0;
const BPF_ADD = 0x00, BPF_SUB = 0x10, BPF_MUL = 0x20, BPF_DIV = 0x30, BPF_OR = 0x40, BPF_AND = 0x50,
  BPF_LSH = 0x60, BPF_RSH = 0x70, BPF_NEG = 0x80, BPF_MOD = 0x90, BPF_XOR = 0xa0;
const BPF_JA = 0x00, BPF_JEQ = 0x10, BPF_JGT = 0x20, BPF_JGE = 0x30, BPF_JSET = 0x40;
const BPF_K = 0x00, BPF_X = 0x08, BPF_A = 0x10;
const BPF_TAX = 0x00, BPF_TXA = 0x80;

/**
 * Linux's special load offsets (SKF_AD_OFF + n), which bpf_image() prints by name for
 * absolute loads: the table of libpcap 1.10 built against Linux's <linux/filter.h>
 * (SKF_AD_MAX = 64). Other offsets at or above SKF_AD_OFF print as negative numbers.
 */
const SKF_AD_OFF = 0xfffff000;
const ANCILLARY: Readonly<Record<number, string>> = {
  0: 'proto', 4: 'type', 8: 'ifidx', 12: 'nla', 16: 'nlan', 20: 'mark', 24: 'queue', 28: 'hatype',
  32: 'rxhash', 36: 'cpu', 40: 'xor_x', 44: 'vlan_tci', 48: 'vlanp', 52: 'poff', 56: 'random', 60: 'vlan_tpid',
};

/** printf("%d") of a 32-bit value held in an unsigned field. */
const signed = (k: number): string => String(k | 0);
/** printf("0x%x"). */
const hex = (k: number): string => `0x${(k >>> 0).toString(16)}`;

function absOperand(k: number): string {
  const off = (k >>> 0) - SKF_AD_OFF;
  const name = off >= 0 ? ANCILLARY[off] : undefined;
  return name !== undefined ? `[${name}]` : `[${signed(k)}]`;
}

/** Opcode mnemonic and operand of one instruction at index n, as bpf_image() chooses them. */
function image(ins: BpfInstruction, n: number): [string, string] {
  const { code, k } = ins;
  switch (code) {
    case BPF_RET | BPF_K: return ['ret', `#${signed(k)}`];
    case BPF_RET | BPF_A: return ['ret', ''];
    case BPF_LD | BPF_W | BPF_ABS: return ['ld', absOperand(k)];
    case BPF_LD | BPF_H | BPF_ABS: return ['ldh', absOperand(k)];
    case BPF_LD | BPF_B | BPF_ABS: return ['ldb', absOperand(k)];
    case BPF_LD | BPF_W | BPF_LEN: return ['ld', '#pktlen'];
    case BPF_LD | BPF_W | BPF_IND: return ['ld', `[x + ${signed(k)}]`];
    case BPF_LD | BPF_H | BPF_IND: return ['ldh', `[x + ${signed(k)}]`];
    case BPF_LD | BPF_B | BPF_IND: return ['ldb', `[x + ${signed(k)}]`];
    case BPF_LD | BPF_IMM: return ['ld', `#${hex(k)}`];
    case BPF_LDX | BPF_IMM: return ['ldx', `#${hex(k)}`];
    case BPF_LDX | BPF_MSH | BPF_B: return ['ldxb', `4*([${signed(k)}]&0xf)`];
    case BPF_LD | BPF_MEM: return ['ld', `M[${signed(k)}]`];
    case BPF_LDX | BPF_MEM: return ['ldx', `M[${signed(k)}]`];
    case BPF_ST: return ['st', `M[${signed(k)}]`];
    case BPF_STX: return ['stx', `M[${signed(k)}]`];
    case BPF_JMP | BPF_JA: return ['ja', signed(n + 1 + k)];
    case BPF_JMP | BPF_JGT | BPF_K: return ['jgt', `#${hex(k)}`];
    case BPF_JMP | BPF_JGE | BPF_K: return ['jge', `#${hex(k)}`];
    case BPF_JMP | BPF_JEQ | BPF_K: return ['jeq', `#${hex(k)}`];
    case BPF_JMP | BPF_JSET | BPF_K: return ['jset', `#${hex(k)}`];
    case BPF_JMP | BPF_JGT | BPF_X: return ['jgt', 'x'];
    case BPF_JMP | BPF_JGE | BPF_X: return ['jge', 'x'];
    case BPF_JMP | BPF_JEQ | BPF_X: return ['jeq', 'x'];
    case BPF_JMP | BPF_JSET | BPF_X: return ['jset', 'x'];
    case BPF_ALU | BPF_ADD | BPF_X: return ['add', 'x'];
    case BPF_ALU | BPF_SUB | BPF_X: return ['sub', 'x'];
    case BPF_ALU | BPF_MUL | BPF_X: return ['mul', 'x'];
    case BPF_ALU | BPF_DIV | BPF_X: return ['div', 'x'];
    case BPF_ALU | BPF_MOD | BPF_X: return ['mod', 'x'];
    case BPF_ALU | BPF_AND | BPF_X: return ['and', 'x'];
    case BPF_ALU | BPF_OR | BPF_X: return ['or', 'x'];
    case BPF_ALU | BPF_XOR | BPF_X: return ['xor', 'x'];
    case BPF_ALU | BPF_LSH | BPF_X: return ['lsh', 'x'];
    case BPF_ALU | BPF_RSH | BPF_X: return ['rsh', 'x'];
    case BPF_ALU | BPF_ADD | BPF_K: return ['add', `#${signed(k)}`];
    case BPF_ALU | BPF_SUB | BPF_K: return ['sub', `#${signed(k)}`];
    case BPF_ALU | BPF_MUL | BPF_K: return ['mul', `#${signed(k)}`];
    case BPF_ALU | BPF_DIV | BPF_K: return ['div', `#${signed(k)}`];
    case BPF_ALU | BPF_MOD | BPF_K: return ['mod', `#${signed(k)}`];
    case BPF_ALU | BPF_AND | BPF_K: return ['and', `#${hex(k)}`];
    case BPF_ALU | BPF_OR | BPF_K: return ['or', `#${hex(k)}`];
    case BPF_ALU | BPF_XOR | BPF_K: return ['xor', `#${hex(k)}`];
    case BPF_ALU | BPF_LSH | BPF_K: return ['lsh', `#${signed(k)}`];
    case BPF_ALU | BPF_RSH | BPF_K: return ['rsh', `#${signed(k)}`];
    case BPF_ALU | BPF_NEG: return ['neg', ''];
    case BPF_MISC | BPF_TAX: return ['tax', ''];
    case BPF_MISC | BPF_TXA: return ['txa', ''];
    default: return ['unimp', hex(code)];
  }
}

/** One line of `tcpdump -d` (without its newline): bpf_image(ins, n). */
export function formatInstruction(ins: BpfInstruction, n: number): string {
  const [op, operand] = image(ins, n);
  const index = String(n).padStart(3, '0');
  // Conditional jumps show both targets; everything else (ja included) just the operand.
  if ((ins.code & 0x07) === BPF_JMP && (ins.code & 0xf0) !== BPF_JA) {
    return `(${index}) ${op.padEnd(8)} ${operand.padEnd(16)} jt ${n + 1 + ins.jt}\tjf ${n + 1 + ins.jf}`;
  }
  return `(${index}) ${op.padEnd(8)} ${operand}`;
}

function checkInstruction(ins: BpfInstruction, i: number): void {
  const ok = (v: unknown, max: number) => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max;
  if (ins === null || typeof ins !== 'object' || !ok(ins.code, 0xffff) || !ok(ins.jt, 0xff) || !ok(ins.jf, 0xff) || !ok(ins.k, 0xffffffff)) {
    throw new NetpdError('EINVAL', `instruction ${i}: expected { code: 0..65535, jt: 0..255, jf: 0..255, k: 0..4294967295 }`, { details: { instruction: i } });
  }
}

/**
 * The text `tcpdump -d`, `-dd` or `-ddd` prints for `program`, exactly (libpcap's
 * bpf_dump() with option 1, 2 or 3), trailing newline included.
 */
export function formatProgram(program: readonly BpfInstruction[], form: ProgramForm): string {
  if (!Array.isArray(program)) throw new NetpdError('EINVAL', 'formatProgram: program must be an array of instructions');
  program.forEach(checkInstruction);
  switch (form) {
    case 'd':
      return program.map((ins, n) => `${formatInstruction(ins, n)}\n`).join('');
    case 'dd':
      return program.map((ins) => `{ ${hex(ins.code)}, ${ins.jt}, ${ins.jf}, 0x${(ins.k >>> 0).toString(16).padStart(8, '0')} },\n`).join('');
    case 'ddd':
      return `${program.length}\n${program.map((ins) => `${ins.code} ${ins.jt} ${ins.jf} ${ins.k >>> 0}\n`).join('')}`;
    default:
      throw new NetpdError('EINVAL', `formatProgram: form must be 'd', 'dd' or 'ddd', not ${JSON.stringify(form)}`);
  }
}
