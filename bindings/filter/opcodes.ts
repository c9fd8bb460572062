// Classic BPF opcode fields (bpf.h), shared by the code generator and the optimizer.

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
