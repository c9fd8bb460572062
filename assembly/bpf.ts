// Classic BPF: the Linux kernel's validation rules and libpcap's interpreter.
//
// A program is an array of 8-byte instructions laid out as struct sock_filter on a
// little-endian machine: u16 code, u8 jt, u8 jf, u32 k. It is checked once, before it
// may run, by bpf_validate, which applies the rules of Linux's bpf_check_classic:
// length 1..4096, only whitelisted opcodes, no division or modulo by constant zero,
// constant shifts below 32, scratch memory indices 0..15, every jump landing inside
// the program, unknown ancillary loads refused, a return as the last instruction, and
// no scratch word read on a path where it was not first stored. Because the kernel
// rules admit only forward jumps, a validated program always ends.
//
// The interpreter is libpcap's bpf_filter, kept as a flat loop over a switch: a load
// that reaches past the captured bytes rejects the packet (returns 0), `len` is the
// wire length, division by a zero X rejects, shifts by X >= 32 give 0. Ancillary
// loads (k at SKF_AD_OFF and above) have no auxiliary data here and reject, as in
// libpcap's bpf_filter without aux data. It runs only validated programs.

import { ArenaHeader, SlotMeta, slot_meta } from './arena';

// Instruction classes and fields (bpf.h)
@inline const BPF_LD: u16 = 0x00;
@inline const BPF_LDX: u16 = 0x01;
@inline const BPF_ST: u16 = 0x02;
@inline const BPF_STX: u16 = 0x03;
@inline const BPF_JMP: u16 = 0x05;
@inline const BPF_ALU: u16 = 0x04;
@inline const BPF_RET: u16 = 0x06;
@inline const BPF_MEM: u16 = 0x60;
@inline const BPF_ABS: u16 = 0x20;
@inline const BPF_W: u16 = 0x00;
@inline const BPF_H: u16 = 0x08;
@inline const BPF_B: u16 = 0x10;
@inline const BPF_JA: u16 = 0x00;
@inline const BPF_DIV: u16 = 0x30;
@inline const BPF_MOD: u16 = 0x90;
@inline const BPF_LSH: u16 = 0x60;
@inline const BPF_RSH: u16 = 0x70;
@inline const BPF_K: u16 = 0x00;

@inline export const BPF_MAXINSNS: u32 = 4096;
@inline export const BPF_MEMWORDS: u32 = 16;
@inline const SKF_AD_OFF: u32 = 0xfffff000;
@inline const SKF_AD_MAX: u32 = 64;

// Validation results: 0 is valid; otherwise (rule << 16) | instruction index.
export const BPF_OK: u32 = 0;
export const BPF_ERR_LENGTH: u32 = 1;
export const BPF_ERR_OPCODE: u32 = 2;
export const BPF_ERR_DIVZERO: u32 = 3;
export const BPF_ERR_SHIFT: u32 = 4;
export const BPF_ERR_MEMINDEX: u32 = 5;
export const BPF_ERR_JUMP: u32 = 6;
export const BPF_ERR_ANCILLARY: u32 = 7;
export const BPF_ERR_NORET: u32 = 8;
export const BPF_ERR_UNINIT: u32 = 9;

@inline function fail(rule: u32, pc: u32): u32 { return (rule << 16) | pc; }

// The opcodes Linux's classic BPF accepts (chk_code_allowed) are exactly those with a
// dense operation number.
@inline function code_allowed(code: u16): bool { return dense_op(code) != OP_INVALID; }

@inline function is_cond_jump(code: u16): bool {
  return (code & 0x07) == BPF_JMP && (code & 0xf0) != BPF_JA;
}

/**
 * Checks the program at `prog` (len instructions) with the Linux classic-BPF rules.
 * `scratch` must hold 2 * len bytes. Returns BPF_OK or (rule << 16) | pc.
 */
export function bpf_validate(prog: usize, len: u32, scratch: usize): u32 {
  if (len == 0 || len > BPF_MAXINSNS) return fail(BPF_ERR_LENGTH, 0);
  for (let pc: u32 = 0; pc < len; pc++) {
    const ins = prog + (<usize>pc << 3);
    const code = load<u16>(ins);
    const jt = <u32>load<u8>(ins, 2);
    const jf = <u32>load<u8>(ins, 3);
    const k = load<u32>(ins, 4);
    if (!code_allowed(code)) return fail(BPF_ERR_OPCODE, pc);
    switch (code) {
      case BPF_ALU | BPF_DIV | BPF_K:
      case BPF_ALU | BPF_MOD | BPF_K:
        if (k == 0) return fail(BPF_ERR_DIVZERO, pc);
        break;
      case BPF_ALU | BPF_LSH | BPF_K:
      case BPF_ALU | BPF_RSH | BPF_K:
        if (k >= 32) return fail(BPF_ERR_SHIFT, pc);
        break;
      case BPF_LD | BPF_MEM:
      case BPF_LDX | BPF_MEM:
      case BPF_ST:
      case BPF_STX:
        if (k >= BPF_MEMWORDS) return fail(BPF_ERR_MEMINDEX, pc);
        break;
      case BPF_JMP | BPF_JA:
        if (k >= len - pc - 1) return fail(BPF_ERR_JUMP, pc);
        break;
      case BPF_LD | BPF_W | BPF_ABS:
      case BPF_LD | BPF_H | BPF_ABS:
      case BPF_LD | BPF_B | BPF_ABS:
        if (k >= SKF_AD_OFF && ((k - SKF_AD_OFF) >= SKF_AD_MAX || ((k - SKF_AD_OFF) & 3) != 0)) {
          return fail(BPF_ERR_ANCILLARY, pc);
        }
        break;
      default:
        if (is_cond_jump(code) && (pc + jt + 1 >= len || pc + jf + 1 >= len)) return fail(BPF_ERR_JUMP, pc);
    }
  }
  const last = load<u16>(prog + (<usize>(len - 1) << 3));
  if (last != (BPF_RET | BPF_K) && last != (BPF_RET | 0x10)) return fail(BPF_ERR_NORET, len - 1);
  return check_loads_and_stores(prog, len, scratch);
}

// Every scratch word must be stored on all paths before it is loaded (the kernel's
// check_load_and_stores): masks[pc] is the set of words valid on every edge into pc.
function check_loads_and_stores(prog: usize, len: u32, masks: usize): u32 {
  memory.fill(masks, 0xff, <usize>len << 1);
  let valid: u32 = 0;
  for (let pc: u32 = 0; pc < len; pc++) {
    const ins = prog + (<usize>pc << 3);
    const code = load<u16>(ins);
    const k = load<u32>(ins, 4);
    valid &= <u32>load<u16>(masks + (<usize>pc << 1));
    if (code == BPF_ST || code == BPF_STX) {
      valid |= 1 << k;
    } else if (code == (BPF_LD | BPF_MEM) || code == (BPF_LDX | BPF_MEM)) {
      if ((valid & (1 << k)) == 0) return fail(BPF_ERR_UNINIT, pc);
    } else if (code == (BPF_JMP | BPF_JA)) {
      narrow(masks, pc + 1 + k, valid);
      valid = 0xffff;
    } else if (is_cond_jump(code)) {
      narrow(masks, pc + 1 + <u32>load<u8>(ins, 2), valid);
      narrow(masks, pc + 1 + <u32>load<u8>(ins, 3), valid);
      valid = 0xffff;
    }
  }
  return BPF_OK;
}

@inline function narrow(masks: usize, at: u32, valid: u32): void {
  const p = masks + (<usize>at << 1);
  store<u16>(p, load<u16>(p) & <u16>valid);
}


// Validated programs run in a decoded form: the opcode field holds a dense operation
// number (below) instead of the sparse BPF code, so the interpreter's switch compiles
// to one jump table rather than a chain of compares.
@inline const OP_RET_K: u16 = 0;
@inline const OP_RET_A: u16 = 1;
@inline const OP_LD_W_ABS: u16 = 2;
@inline const OP_LD_H_ABS: u16 = 3;
@inline const OP_LD_B_ABS: u16 = 4;
@inline const OP_LD_LEN: u16 = 5;
@inline const OP_LDX_LEN: u16 = 6;
@inline const OP_LD_W_IND: u16 = 7;
@inline const OP_LD_H_IND: u16 = 8;
@inline const OP_LD_B_IND: u16 = 9;
@inline const OP_LDX_MSH: u16 = 10;
@inline const OP_LD_IMM: u16 = 11;
@inline const OP_LDX_IMM: u16 = 12;
@inline const OP_LD_MEM: u16 = 13;
@inline const OP_LDX_MEM: u16 = 14;
@inline const OP_ST: u16 = 15;
@inline const OP_STX: u16 = 16;
@inline const OP_JA: u16 = 17;
@inline const OP_JEQ_K: u16 = 18;
@inline const OP_JGT_K: u16 = 19;
@inline const OP_JGE_K: u16 = 20;
@inline const OP_JSET_K: u16 = 21;
@inline const OP_JEQ_X: u16 = 22;
@inline const OP_JGT_X: u16 = 23;
@inline const OP_JGE_X: u16 = 24;
@inline const OP_JSET_X: u16 = 25;
@inline const OP_ADD_K: u16 = 26;
@inline const OP_SUB_K: u16 = 27;
@inline const OP_MUL_K: u16 = 28;
@inline const OP_DIV_K: u16 = 29;
@inline const OP_MOD_K: u16 = 30;
@inline const OP_AND_K: u16 = 31;
@inline const OP_OR_K: u16 = 32;
@inline const OP_XOR_K: u16 = 33;
@inline const OP_LSH_K: u16 = 34;
@inline const OP_RSH_K: u16 = 35;
@inline const OP_ADD_X: u16 = 36;
@inline const OP_SUB_X: u16 = 37;
@inline const OP_MUL_X: u16 = 38;
@inline const OP_DIV_X: u16 = 39;
@inline const OP_MOD_X: u16 = 40;
@inline const OP_AND_X: u16 = 41;
@inline const OP_OR_X: u16 = 42;
@inline const OP_XOR_X: u16 = 43;
@inline const OP_LSH_X: u16 = 44;
@inline const OP_RSH_X: u16 = 45;
@inline const OP_NEG: u16 = 46;
@inline const OP_TAX: u16 = 47;
@inline const OP_TXA: u16 = 48;
@inline const OP_INVALID: u16 = 0xffff;

function dense_op(code: u16): u16 {
  switch (code) {
    case 0x06: return OP_RET_K;
    case 0x16: return OP_RET_A;
    case 0x20: return OP_LD_W_ABS;
    case 0x28: return OP_LD_H_ABS;
    case 0x30: return OP_LD_B_ABS;
    case 0x80: return OP_LD_LEN;
    case 0x81: return OP_LDX_LEN;
    case 0x40: return OP_LD_W_IND;
    case 0x48: return OP_LD_H_IND;
    case 0x50: return OP_LD_B_IND;
    case 0xb1: return OP_LDX_MSH;
    case 0x00: return OP_LD_IMM;
    case 0x01: return OP_LDX_IMM;
    case 0x60: return OP_LD_MEM;
    case 0x61: return OP_LDX_MEM;
    case 0x02: return OP_ST;
    case 0x03: return OP_STX;
    case 0x05: return OP_JA;
    case 0x15: return OP_JEQ_K;
    case 0x25: return OP_JGT_K;
    case 0x35: return OP_JGE_K;
    case 0x45: return OP_JSET_K;
    case 0x1d: return OP_JEQ_X;
    case 0x2d: return OP_JGT_X;
    case 0x3d: return OP_JGE_X;
    case 0x4d: return OP_JSET_X;
    case 0x04: return OP_ADD_K;
    case 0x14: return OP_SUB_K;
    case 0x24: return OP_MUL_K;
    case 0x34: return OP_DIV_K;
    case 0x94: return OP_MOD_K;
    case 0x54: return OP_AND_K;
    case 0x44: return OP_OR_K;
    case 0xa4: return OP_XOR_K;
    case 0x64: return OP_LSH_K;
    case 0x74: return OP_RSH_K;
    case 0x0c: return OP_ADD_X;
    case 0x1c: return OP_SUB_X;
    case 0x2c: return OP_MUL_X;
    case 0x3c: return OP_DIV_X;
    case 0x9c: return OP_MOD_X;
    case 0x5c: return OP_AND_X;
    case 0x4c: return OP_OR_X;
    case 0xac: return OP_XOR_X;
    case 0x6c: return OP_LSH_X;
    case 0x7c: return OP_RSH_X;
    case 0x84: return OP_NEG;
    case 0x07: return OP_TAX;
    case 0x87: return OP_TXA;
  }
  return OP_INVALID;
}

/** Rewrites a validated program in place into the decoded form bpf_run executes. */
export function bpf_decode(prog: usize, len: u32): void {
  for (let pc: u32 = 0; pc < len; pc++) {
    const ins = prog + (<usize>pc << 3);
    store<u16>(ins, dense_op(load<u16>(ins)));
  }
}

/**
 * Runs a validated, decoded program over one packet: `buflen` captured bytes at `pkt`, wire
 * length `wirelen`, scratch memory `mem` (16 words). Returns the program's result
 * (0 rejects; otherwise the number of bytes to accept).
 */
export function bpf_run(prog: usize, pkt: usize, buflen: u32, wirelen: u32, mem: usize): u32 {
  let A: u32 = 0;
  let X: u32 = 0;
  let ins = prog;
  while (true) {
    const code = load<u16>(ins);
    const k = load<u32>(ins, 4);
    switch (code) {
      case OP_RET_K: return k;                                   // ret #k
      case OP_RET_A: return A;                                   // ret a
      case OP_LD_W_ABS:                                             // ld [k]
        if (k > buflen || buflen - k < 4) return 0;
        A = bswap<u32>(load<u32>(pkt + k)); break;
      case OP_LD_H_ABS:                                             // ldh [k]
        if (k > buflen || buflen - k < 2) return 0;
        A = <u32>bswap<u16>(load<u16>(pkt + k)); break;
      case OP_LD_B_ABS:                                             // ldb [k]
        if (k >= buflen) return 0;
        A = <u32>load<u8>(pkt + k); break;
      case OP_LD_LEN: A = wirelen; break;                         // ld len
      case OP_LDX_LEN: X = wirelen; break;                         // ldx len
      case OP_LD_W_IND: {                                           // ld [x + k]
        if (k > buflen || X > buflen - k || buflen - (X + k) < 4) return 0;
        A = bswap<u32>(load<u32>(pkt + X + k)); break;
      }
      case OP_LD_H_IND: {                                           // ldh [x + k]
        if (k > buflen || X > buflen - k || buflen - (X + k) < 2) return 0;
        A = <u32>bswap<u16>(load<u16>(pkt + X + k)); break;
      }
      case OP_LD_B_IND: {                                           // ldb [x + k]
        if (k >= buflen || X >= buflen - k) return 0;
        A = <u32>load<u8>(pkt + X + k); break;
      }
      case OP_LDX_MSH:                                             // ldxb 4*([k]&0xf)
        if (k >= buflen) return 0;
        X = (<u32>load<u8>(pkt + k) & 0xf) << 2; break;
      case OP_LD_IMM: A = k; break;                               // ld #k
      case OP_LDX_IMM: X = k; break;                               // ldx #k
      case OP_LD_MEM: A = load<u32>(mem + (<usize>k << 2)); break;// ld M[k]
      case OP_LDX_MEM: X = load<u32>(mem + (<usize>k << 2)); break;// ldx M[k]
      case OP_ST: store<u32>(mem + (<usize>k << 2), A); break;// st M[k]
      case OP_STX: store<u32>(mem + (<usize>k << 2), X); break;// stx M[k]
      case OP_JA: ins += <usize>k << 3; break;                // ja
      case OP_JEQ_K: ins += <usize>(A == k ? load<u8>(ins, 2) : load<u8>(ins, 3)) << 3; break;
      case OP_JGT_K: ins += <usize>(A > k ? load<u8>(ins, 2) : load<u8>(ins, 3)) << 3; break;
      case OP_JGE_K: ins += <usize>(A >= k ? load<u8>(ins, 2) : load<u8>(ins, 3)) << 3; break;
      case OP_JSET_K: ins += <usize>((A & k) != 0 ? load<u8>(ins, 2) : load<u8>(ins, 3)) << 3; break;
      case OP_JEQ_X: ins += <usize>(A == X ? load<u8>(ins, 2) : load<u8>(ins, 3)) << 3; break;
      case OP_JGT_X: ins += <usize>(A > X ? load<u8>(ins, 2) : load<u8>(ins, 3)) << 3; break;
      case OP_JGE_X: ins += <usize>(A >= X ? load<u8>(ins, 2) : load<u8>(ins, 3)) << 3; break;
      case OP_JSET_X: ins += <usize>((A & X) != 0 ? load<u8>(ins, 2) : load<u8>(ins, 3)) << 3; break;
      case OP_ADD_K: A += k; break;
      case OP_SUB_K: A -= k; break;
      case OP_MUL_K: A *= k; break;
      case OP_DIV_K: A /= k; break;
      case OP_MOD_K: A %= k; break;
      case OP_AND_K: A &= k; break;
      case OP_OR_K: A |= k; break;
      case OP_XOR_K: A ^= k; break;
      case OP_LSH_K: A <<= k; break;
      case OP_RSH_K: A >>= k; break;
      case OP_ADD_X: A += X; break;
      case OP_SUB_X: A -= X; break;
      case OP_MUL_X: A *= X; break;
      case OP_DIV_X: if (X == 0) return 0; A /= X; break;
      case OP_MOD_X: if (X == 0) return 0; A %= X; break;
      case OP_AND_X: A &= X; break;
      case OP_OR_X: A |= X; break;
      case OP_XOR_X: A ^= X; break;
      case OP_LSH_X: A = X < 32 ? A << X : 0; break;
      case OP_RSH_X: A = X < 32 ? A >> X : 0; break;
      case OP_NEG: A = -A; break;
      case OP_TAX: X = A; break;                               // tax
      case OP_TXA: A = X; break;                               // txa
      default: return 0;                                     // unreachable for decoded programs
    }
    ins += 8;
  }
}

/**
 * Runs one validated program over slots[0..n) of `arena`, writing each result to
 * out[i]. Returns how many packets it accepted. `mem` is 16 words of scratch.
 */
export function bpf_run_burst(arena: usize, prog: usize, slots: usize, n: u32, out: usize, mem: usize): u32 {
  let accepted: u32 = 0;
  const h = changetype<ArenaHeader>(arena);
  const data = <usize>h.data;
  const slotSize = <usize>h.slotSize;
  for (let i: u32 = 0; i < n; i++) {
    const slot = load<u32>(slots + (<usize>i << 2));
    const m = changetype<SlotMeta>(slot_meta(arena, slot));
    const r = bpf_run(prog, data + <usize>slot * slotSize, m.capLen, m.wireLen, mem);
    store<u32>(out + (<usize>i << 2), r);
    if (r != 0) accepted++;
  }
  return accepted;
}
