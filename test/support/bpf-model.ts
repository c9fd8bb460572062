// An independent model of libpcap's bpf_filter (bpf_filter.c) for property tests,
// written from the C source's semantics, deliberately plain and unoptimized.
// Every read of packet bytes goes through `at`, which throws if it strays past caplen.

export interface Insn { code: number; jt: number; jf: number; k: number }

export function modelFilter(prog: Insn[], pkt: Uint8Array, caplen: number, wirelen: number): number {
  return modelRun(prog, pkt, caplen, wirelen).verdict;
}

/** The verdict, and whether it was a rejection because a load went past the captured bytes. */
export function modelRun(
  prog: Insn[], pkt: Uint8Array, caplen: number, wirelen: number,
  trace?: (pc: number, a: number, x: number) => void,
): { verdict: number; outOfBounds: boolean } {
  const oob = { verdict: 0, outOfBounds: true };
  const done = (verdict: number) => ({ verdict: verdict >>> 0, outOfBounds: false });
  const at = (i: number) => {
    if (i < 0 || i >= caplen) throw new Error(`model read outside packet at ${i}`);
    return pkt[i];
  };
  const word = (i: number) => ((at(i) << 24) | (at(i + 1) << 16) | (at(i + 2) << 8) | at(i + 3)) >>> 0;
  const half = (i: number) => (at(i) << 8) | at(i + 1);
  let A = 0;
  let X = 0;
  const M = new Array<number>(16).fill(0);
  for (let pc = 0; ; pc++) {
    const { code, jt, jf, k } = prog[pc];
    trace?.(pc, A, X);
    switch (code) {
      case 0x06: return done(k);
      case 0x16: return done(A);
      case 0x20: if (k > caplen || caplen - k < 4) return oob; A = word(k); break;
      case 0x28: if (k > caplen || caplen - k < 2) return oob; A = half(k); break;
      case 0x30: if (k >= caplen) return oob; A = at(k); break;
      case 0x80: A = wirelen; break;
      case 0x81: X = wirelen; break;
      case 0x40: if (k > caplen || X > caplen - k || caplen - (X + k) < 4) return oob; A = word(X + k); break;
      case 0x48: if (k > caplen || X > caplen - k || caplen - (X + k) < 2) return oob; A = half(X + k); break;
      case 0x50: if (k >= caplen || X >= caplen - k) return oob; A = at(X + k); break;
      case 0xb1: if (k >= caplen) return oob; X = (at(k) & 0xf) << 2; break;
      case 0x00: A = k; break;
      case 0x01: X = k; break;
      case 0x60: A = M[k]; break;
      case 0x61: X = M[k]; break;
      case 0x02: M[k] = A; break;
      case 0x03: M[k] = X; break;
      case 0x05: pc += k; break;
      case 0x15: pc += A === k ? jt : jf; break;
      case 0x25: pc += A > k ? jt : jf; break;
      case 0x35: pc += A >= k ? jt : jf; break;
      case 0x45: pc += (A & k) >>> 0 ? jt : jf; break;
      case 0x1d: pc += A === X ? jt : jf; break;
      case 0x2d: pc += A > X ? jt : jf; break;
      case 0x3d: pc += A >= X ? jt : jf; break;
      case 0x4d: pc += (A & X) >>> 0 ? jt : jf; break;
      case 0x04: A = (A + k) >>> 0; break;
      case 0x14: A = (A - k) >>> 0; break;
      case 0x24: A = Math.imul(A, k) >>> 0; break;
      case 0x34: A = Math.floor(A / k) >>> 0; break;
      case 0x94: A = (A % k) >>> 0; break;
      case 0x54: A = (A & k) >>> 0; break;
      case 0x44: A = (A | k) >>> 0; break;
      case 0xa4: A = (A ^ k) >>> 0; break;
      case 0x64: A = (A << k) >>> 0; break;
      case 0x74: A = A >>> k; break;
      case 0x0c: A = (A + X) >>> 0; break;
      case 0x1c: A = (A - X) >>> 0; break;
      case 0x2c: A = Math.imul(A, X) >>> 0; break;
      case 0x3c: if (X === 0) return done(0); A = Math.floor(A / X) >>> 0; break;
      case 0x9c: if (X === 0) return done(0); A = (A % X) >>> 0; break;
      case 0x5c: A = (A & X) >>> 0; break;
      case 0x4c: A = (A | X) >>> 0; break;
      case 0xac: A = (A ^ X) >>> 0; break;
      case 0x6c: A = X < 32 ? (A << X) >>> 0 : 0; break;
      case 0x7c: A = X < 32 ? A >>> X : 0; break;
      case 0x84: A = (-A) >>> 0; break;
      case 0x07: X = A; break;
      case 0x87: A = X; break;
      default: throw new Error(`model: opcode 0x${code.toString(16)}`);
    }
  }
}

/** Every opcode Linux's classic BPF accepts. */
export const VALID_CODES = [
  0x04, 0x0c, 0x14, 0x1c, 0x24, 0x2c, 0x34, 0x3c, 0x94, 0x9c, 0x54, 0x5c, 0x44, 0x4c, 0xa4, 0xac,
  0x64, 0x6c, 0x74, 0x7c, 0x84, 0x20, 0x28, 0x30, 0x40, 0x48, 0x50, 0x80, 0x00, 0x60, 0x81, 0xb1,
  0x01, 0x61, 0x02, 0x03, 0x07, 0x87, 0x06, 0x16, 0x05, 0x15, 0x1d, 0x25, 0x2d, 0x35, 0x3d, 0x45, 0x4d,
];
