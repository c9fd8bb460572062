// The classic-BPF optimizer (bindings/filter/optimize.ts):
//  - against libpcap: the unoptimized program of every reference expression
//    (`tcpdump -O -ddd`; test/fixtures/bpf, and the compiler's larger corpus in
//    test/fixtures/filter when present), optimized by netpd and run by netpd's interpreter, accepts
//    exactly the packets libpcap's optimized program accepts, on every capture; it
//    reduces to `ret #0` exactly the expressions tcpdump calls "rejects all
//    packets"; the sizes are compared with libpcap's optimized programs;
//  - on random programs: the optimized program validates and gives the input's
//    verdict on every packet where the input reads nothing past the captured bytes
//    (where dead-load removal cannot matter), and optimizing again does not grow it;
//  - the deliberate behaviour change (dead loads) and what must not change
//    (division by zero) on small hand-written programs.
import { describe, it, expect, beforeAll } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import fc from 'fast-check';
import { modelRun } from './support/bpf-model.js';
import { Arena } from '../bindings/arena.js';
import { BpfFilter, parseDdd, runFilter, validateProgram, type BpfInstruction } from '../bindings/bpf.js';
import { loadCapture } from './support/captures.js';
import { optimizeProgram, rejectsAll } from '../bindings/filter/optimize.js';
import { Block, emit } from '../bindings/filter/optimize-cfg.js';

interface Case { expr: string; optimized: boolean; ddd: string; accepted: Record<string, number[]> }
interface Failure { expr: string; optimized?: { message?: string }; unoptimized?: { status: number; ddd?: string } }
interface Corpus { name: string; captures: string[]; cases: Case[]; errors?: Failure[] }
// The reference corpus (test/fixtures/bpf), and the compiler's larger one when it is
// there (test/fixtures/filter: generated expressions, captures cut short on purpose).
const corpora: Corpus[] = ['bpf', 'filter']
  .map((name) => ({ name, url: new URL(`./fixtures/${name}/libpcap.json`, import.meta.url) }))
  .filter(({ name, url }) => name === 'bpf' || existsSync(url))
  .map(({ name, url }) => ({ name, ...(JSON.parse(readFileSync(url, 'utf8')) as Omit<Corpus, 'name'>) }));

/** libpcap's `protochain` loops with a backward jump, which netpd (like Linux) refuses. */
function hasBackwardJump(ddd: string): boolean {
  return ddd.trim().split('\n').slice(1).some((line) => {
    const [code, , , k] = line.split(' ').map(Number);
    return code === 0x05 && k >= 0x80000000;
  });
}

const ins = (code: number, k = 0, jt = 0, jf = 0): BpfInstruction => ({ code, jt, jf, k });
const RET0 = ins(0x06, 0);
const isRet0 = (p: readonly BpfInstruction[]) => p.length === 1 && p[0].code === 0x06 && p[0].k === 0;

describe('optimizer agrees with libpcap', () => {
  const MAX = 1024;
  const arena = Arena.create({ slotSize: 65536, slotCount: 4096, controlBytes: 64 * 1024 * 1024 });
  const loaded = new Map<string, { vec: Uint32Array; n: number }>();
  const out = arena.burstVector(MAX);

  beforeAll(() => {
    for (const name of new Set(corpora.flatMap((c) => c.captures))) loaded.set(name, loadCapture(arena, name, MAX));
  });

  function accepted(program: BpfInstruction[], name: string): number[] {
    const filter = new BpfFilter(arena, program);
    const { vec, n } = loaded.get(name)!;
    filter.run(vec, n, out);
    const ours: number[] = [];
    for (let i = 0; i < n; i++) if (out[i] !== 0) ours.push(i + 1);
    return ours;
  }

  for (const corpus of corpora) {
    const pairs = new Map<string, { opt: Case; unopt: Case }>();
    for (const c of corpus.cases) {
      const p = pairs.get(c.expr) ?? ({} as { opt: Case; unopt: Case });
      if (c.optimized) p.opt = c;
      else p.unopt = c;
      pairs.set(c.expr, p);
    }
    const usable = [...pairs.values()].filter((p) => p.opt && p.unopt && !hasBackwardJump(p.unopt.ddd));

    describe(`on the ${corpus.name} corpus (${usable.length} expressions)`, () => {
      it('covers the non-protochain expressions', () => {
        expect(usable.length).toBeGreaterThanOrEqual(300);
      });

      it('optimizing `tcpdump -O` output accepts exactly what tcpdump\'s optimized program accepts, on every capture', () => {
        const mismatches: string[] = [];
        let ours = 0, theirs = 0;
        const ratios: { r: number; expr: string; n: number; m: number }[] = [];
        for (const { opt, unopt } of usable) {
          const program = optimizeProgram(parseDdd(unopt.ddd));
          expect(() => validateProgram(program), unopt.expr).not.toThrow();
          const libpcap = parseDdd(opt.ddd);
          ours += program.length;
          theirs += libpcap.length;
          ratios.push({ r: program.length / libpcap.length, expr: opt.expr, n: program.length, m: libpcap.length });
          for (const name of corpus.captures) {
            const got = accepted(program, name);
            if (got.join(',') !== opt.accepted[name].join(',')) {
              mismatches.push(`"${opt.expr}" on ${name}: netpd [${got.join(',')}] libpcap [${opt.accepted[name].join(',')}]`);
            }
          }
        }
        ratios.sort((a, b) => b.r - a.r);
        console.log(
          `optimizer, ${corpus.name} corpus: ${usable.length} expressions, ${ours} instructions against libpcap's ${theirs} ` +
            `(ratio ${(ours / theirs).toFixed(3)}); largest ratios: ${ratios.slice(0, 3).map((x) => `${x.expr} ${x.n}/${x.m}`).join('; ')}`,
        );
        expect(mismatches).toEqual([]);
        expect(ours / theirs).toBeLessThanOrEqual(1.2);
      });

      it('proves "rejects all packets" exactly where libpcap does', () => {
        const differ: string[] = [];
        for (const { opt, unopt } of usable) {
          const ours = isRet0(optimizeProgram(parseDdd(unopt.ddd)));
          if (ours !== isRet0(parseDdd(opt.ddd))) differ.push(`${opt.expr}: netpd ${ours ? 'rejects all' : 'compiles'}`);
        }
        for (const e of corpus.errors ?? []) {
          if (e.optimized?.message !== 'expression rejects all packets' || !e.unoptimized?.ddd || hasBackwardJump(e.unoptimized.ddd)) continue;
          if (!rejectsAll(parseDdd(e.unoptimized.ddd))) differ.push(`${e.expr}: libpcap rejects all, netpd compiles`);
        }
        expect(differ).toEqual([]);
      });

      it('re-optimizing libpcap\'s optimized programs keeps their verdicts and never grows them', () => {
        const mismatches: string[] = [];
        for (const { opt } of usable) {
          const libpcap = parseDdd(opt.ddd);
          const program = optimizeProgram(libpcap);
          validateProgram(program);
          expect(program.length, opt.expr).toBeLessThanOrEqual(libpcap.length);
          for (const name of corpus.captures) {
            const got = accepted(program, name);
            if (got.join(',') !== opt.accepted[name].join(',')) mismatches.push(`"${opt.expr}" on ${name}`);
          }
        }
        expect(mismatches).toEqual([]);
      });

      it('is idempotent-ish on the reference expressions: a second pass never grows the program', () => {
        for (const { unopt } of usable) {
          const once = optimizeProgram(parseDdd(unopt.ddd));
          expect(optimizeProgram(once).length, unopt.expr).toBeLessThanOrEqual(once.length);
        }
      });
    });
  }
});

// ---------------------------------------------------------------- hand-written programs

describe('optimizer: loads, constants and traps', () => {
  it('drops a load whose value is masked away (libpcap does the same), so a short packet is accepted', () => {
    // ld [26]; and #0; jeq #0 → accept, else reject: always accepts once optimized.
    const p = [ins(0x20, 26), ins(0x54, 0), ins(0x15, 0, 0, 1), ins(0x06, 0xffff), RET0];
    const o = optimizeProgram(p);
    expect(o).toEqual([ins(0x06, 0xffff)]);
    expect(runFilter(p, [new Uint8Array(10)])).toEqual([0]);
    expect(runFilter(o, [new Uint8Array(10)])).toEqual([0xffff]);
  });

  it('drops a load feeding a test whose two outcomes are the same', () => {
    const p = [ins(0x28, 12), ins(0x15, 0x800, 0, 1), ins(0x06, 1), ins(0x06, 1)];
    expect(optimizeProgram(p)).toEqual([ins(0x06, 1)]);
  });

  it('keeps the loads of the first test when both its outcomes agree, as libpcap (opt_root) does', () => {
    // `tcpdump -O -dd '(ether[100] = 1 or ether[100] != 1) and ip'`. Nothing can
    // jump around the first block, so libpcap keeps its load of [100]: tcpdump's
    // program is `ldb [100]; ldh [12]; jeq #0x800; ret; ret`, and a short IPv4
    // packet is rejected.
    const test = (m: number) => [[0x00, 0, 0, 100], [0x02, 0, 0, m], [0x61, 0, 0, m], [0x50, 0, 0, 0], [0x02, 0, 0, m + 1],
      [0x00, 0, 0, 1], [0x02, 0, 0, m + 2], [0x61, 0, 0, m + 2], [0x60, 0, 0, m + 1], [0x1c, 0, 0, 0]];
    const dd = (rows: number[][]) => rows.map(([code, jt, jf, k]) => ins(code, k, jt, jf));
    const first = dd([...test(0), [0x15, 11, 0, 0], ...test(2), [0x15, 3, 0, 0], [0x28, 0, 0, 12], [0x15, 0, 1, 0x800],
      [0x06, 0, 0, 0x40000], [0x06, 0, 0, 0]]);
    const o = optimizeProgram(first);
    expect(o).toEqual(dd([[0x30, 0, 0, 100], [0x28, 0, 0, 12], [0x15, 0, 1, 0x800], [0x06, 0, 0, 0x40000], [0x06, 0, 0, 0]]));
    const shortIp = new Uint8Array(60);
    shortIp[12] = 0x08;
    expect(runFilter(o, [shortIp])).toEqual([0]);
    // `ip and (ether[100] = 1 or ether[100] != 1)`: there the test is jumped around
    // and its load goes, in tcpdump's program and in ours.
    const later = dd([[0x28, 0, 0, 12], [0x15, 0, 23, 0x800], ...test(0), [0x15, 11, 0, 0], ...test(2), [0x15, 1, 0, 0],
      [0x06, 0, 0, 0x40000], [0x06, 0, 0, 0]]);
    expect(optimizeProgram(later)).toEqual(dd([[0x28, 0, 0, 12], [0x15, 0, 1, 0x800], [0x06, 0, 0, 0x40000], [0x06, 0, 0, 0]]));
  });

  it('keeps the loads before a test that only the second pass settles, as libpcap (no branch moves there)', () => {
    // `tcpdump -O -dd 'ether[20] = 6 or 1 + 2 = 3'`: libpcap folds 1 + 2 only in its
    // second loop, so `ldb [20]; jeq #6` stays in tcpdump's program
    // (`ldb [20]; jeq #6; ld #3; jeq #3; ret`), and a 20-byte packet is rejected.
    const rows = [[0x00, 0, 0, 20], [0x02, 0, 0, 0], [0x61, 0, 0, 0], [0x50, 0, 0, 0], [0x02, 0, 0, 1], [0x00, 0, 0, 6], [0x02, 0, 0, 2],
      [0x61, 0, 0, 2], [0x60, 0, 0, 1], [0x1c, 0, 0, 0], [0x15, 14, 0, 0], [0x00, 0, 0, 1], [0x02, 0, 0, 2], [0x00, 0, 0, 2], [0x02, 0, 0, 3],
      [0x61, 0, 0, 3], [0x60, 0, 0, 2], [0x0c, 0, 0, 0], [0x02, 0, 0, 3], [0x00, 0, 0, 3], [0x02, 0, 0, 4], [0x61, 0, 0, 4], [0x60, 0, 0, 3],
      [0x1c, 0, 0, 0], [0x15, 0, 1, 0], [0x06, 0, 0, 0x40000], [0x06, 0, 0, 0]];
    const p = rows.map(([code, jt, jf, k]) => ins(code, k, jt, jf));
    const o = optimizeProgram(p);
    expect(o.length).toBeLessThanOrEqual(5);
    expect(o[0]).toEqual(ins(0x30, 20));
    expect(runFilter(o, [new Uint8Array(20), new Uint8Array(21)])).toEqual([0, 0x40000]);
    expect(rejectsAll(o)).toBe(false);
  });

  it('keeps a load whose value decides the verdict', () => {
    const p = [ins(0x30, 40), ins(0x15, 7, 0, 1), ins(0x06, 1), RET0];
    const o = optimizeProgram(p);
    expect(o).toEqual(p);
    expect(runFilter(o, [new Uint8Array(20)])).toEqual([0]);
  });

  it('removes a reload of a value already loaded, and tests already answered', () => {
    // ldh [12]; jeq #0x800 → (ldh [12]; jeq #0x800 → ldb [23]; jeq #6 …)
    const p = [
      ins(0x28, 12), ins(0x15, 0x800, 0, 5),
      ins(0x28, 12), ins(0x15, 0x800, 0, 3),
      ins(0x30, 23), ins(0x15, 6, 0, 1),
      ins(0x06, 0x40000), RET0,
    ];
    expect(optimizeProgram(p)).toEqual([
      ins(0x28, 12), ins(0x15, 0x800, 0, 3),
      ins(0x30, 23), ins(0x15, 6, 0, 1),
      ins(0x06, 0x40000), RET0,
    ]);
  });

  it('folds a constant index into the load offset (tcp[13])', () => {
    // ld #13; st M[0]; ldxb 4*([14]&0xf); ld M[0]; add x; tax; ldb [x+14]; jeq #2
    const p = [
      ins(0x00, 13), ins(0x02, 0), ins(0xb1, 14), ins(0x60, 0), ins(0x0c), ins(0x07), ins(0x50, 14),
      ins(0x15, 2, 0, 1), ins(0x06, 0x40000), RET0,
    ];
    expect(optimizeProgram(p)).toEqual([ins(0xb1, 14), ins(0x50, 27), ins(0x15, 2, 0, 1), ins(0x06, 0x40000), RET0]);
  });

  it('never removes a division by X, which rejects when X is 0', () => {
    // ld [0]; tax; ld #10; div x; ld #1; jeq #1 → accept: accepts only if [0..3] != 0
    const p = [ins(0x20, 0), ins(0x07), ins(0x00, 10), ins(0x3c), ins(0x00, 1), ins(0x15, 1, 0, 1), ins(0x06, 5), RET0];
    const o = optimizeProgram(p);
    const pkts = [new Uint8Array([0, 0, 0, 0]), new Uint8Array([0, 0, 0, 3])];
    expect(runFilter(o, pkts)).toEqual(runFilter(p, pkts));
    expect(runFilter(o, pkts)).toEqual([0, 5]);
  });

  it('drops a division when nothing after it can accept (rejecting there changes nothing)', () => {
    // `tcpdump -O -dd 'ip[8] % ip[1] = 0 and not ip'`: tcpdump says "expression rejects
    // all packets" (libpcap drops the unused `mod x`); we keep divisions that could
    // reject a packet otherwise accepted, but this one cannot.
    const rows = [[0x28, 0, 0, 12], [0x15, 0, 23, 0x800], [0x00, 0, 0, 8], [0x02, 0, 0, 0], [0x61, 0, 0, 0], [0x50, 0, 0, 14],
      [0x02, 0, 0, 1], [0x00, 0, 0, 1], [0x02, 0, 0, 2], [0x61, 0, 0, 2], [0x50, 0, 0, 14], [0x02, 0, 0, 3], [0x61, 0, 0, 3],
      [0x60, 0, 0, 1], [0x9c, 0, 0, 0], [0x02, 0, 0, 3], [0x00, 0, 0, 0], [0x02, 0, 0, 4], [0x61, 0, 0, 4], [0x60, 0, 0, 3],
      [0x1c, 0, 0, 0], [0x15, 0, 3, 0], [0x28, 0, 0, 12], [0x15, 1, 0, 0x800], [0x06, 0, 0, 0x40000], [0x06, 0, 0, 0]];
    const p = rows.map(([code, jt, jf, k]) => ins(code, k, jt, jf));
    validateProgram(p);
    expect(optimizeProgram(p)).toEqual([RET0]);
    expect(rejectsAll(p)).toBe(true);
  });

  it('turns a division by X known to be 0 (X starts at 0) into a rejection', () => {
    const p = [ins(0x28, 12), ins(0x3c), ins(0x06, 0xffff)];
    expect(optimizeProgram(p)).toEqual([RET0]);
    expect(rejectsAll(p)).toBe(true);
  });

  it('reduces a program that accepts nothing to `ret #0` and says so', () => {
    // ip and not ip
    const p = [ins(0x28, 12), ins(0x15, 0x800, 0, 3), ins(0x28, 12), ins(0x15, 0x800, 1, 0), ins(0x06, 0x40000), RET0];
    expect(optimizeProgram(p)).toEqual([RET0]);
    expect(rejectsAll(p)).toBe(true);
    expect(rejectsAll([RET0])).toBe(true);
    expect(rejectsAll([ins(0x16)])).toBe(true); // ret a, and A starts at 0
    expect(rejectsAll([ins(0x28, 12), ins(0x15, 0x800, 0, 1), ins(0x06, 1), RET0])).toBe(false);
  });

  it('uses long jumps when a conditional offset exceeds 255', () => {
    // 200 × (ldb [i]; jeq #i jt 1 jf 0; ja → ret #0), then ret #9, ret #0. Jump
    // threading sends each jeq's false side straight to the far `ret #0`: the early
    // ones need a `ja` again.
    const units = 200;
    const prog: BpfInstruction[] = [];
    for (let i = 0; i < units; i++) {
      const pc = prog.length;
      prog.push(ins(0x30, i), ins(0x15, i, 1, 0), ins(0x05, 3 * units + 1 - (pc + 3)));
    }
    prog.push(ins(0x06, 9), RET0);
    validateProgram(prog);
    const o = optimizeProgram(prog);
    validateProgram(o);
    expect(o.length).toBeLessThan(prog.length);
    expect(o.some((x) => x.code === 0x05)).toBe(true);
    const good = Uint8Array.from({ length: 256 }, (_, i) => i);
    const bad = good.slice();
    bad[5] = 0xff;
    expect(runFilter(o, [good, bad])).toEqual([9, 0]);
  });

  it('lays blocks out so that the kernel\'s scratch check passes after a return that reads registers', () => {
    // The check lets the instruction after a `ret` inherit what the `ret` saw. Here
    // `ret a` blocks come before `ld M[0]; ret a`, and neither saw M[0] stored.
    const blk = (id: number, pos: number, stmts: BpfInstruction[], code: number, k = 0) => {
      const b = new Block(id, pos);
      b.stmts = stmts.map(({ code, k }) => ({ code, k }));
      b.code = code;
      b.k = k;
      return b;
    };
    const root = blk(0, 0, [ins(0x30, 0)], 0x15, 1);
    const c = blk(1, 1, [ins(0x28, 4), ins(0x04, 1), ins(0x02, 0), ins(0x30, 1)], 0x15, 2);
    const r1 = blk(2, 3, [ins(0x28, 2)], 0x16);
    const b = blk(3, 4, [ins(0x60, 0)], 0x16);
    const r3 = blk(4, 5, [], 0x06, 0);
    [root.jt, root.jf, c.jt, c.jf] = [r1, c, b, r3];
    const prog = emit(root);
    expect(() => validateProgram(prog)).not.toThrow();
    const pkt = (a: number, b: number) => Uint8Array.from([a, b, 0, 7, 0, 9]);
    expect(runFilter(prog, [pkt(1, 2), pkt(0, 2), pkt(0, 0)])).toEqual([7, 10, 0]);
  });

  it('does not reorder an `and` chain whose common target reads what the failing test left in A', () => {
    // [14] == 1 && [12:2] == 1 && [14] & 2, else test A & 1: which test fails first decides A.
    const p = [
      ins(0x30, 14), ins(0x15, 1, 0, 4), ins(0x28, 12), ins(0x15, 1, 0, 2), ins(0x30, 14), ins(0x45, 2, 2, 0),
      ins(0x45, 1, 0, 2), ins(0x06, 5), ins(0x06, 9), RET0,
    ];
    const pkt = new Uint8Array(16);
    pkt[12] = 1; // [12:2] = 0x100
    pkt[14] = 1;
    expect(runFilter(optimizeProgram(p), [pkt])).toEqual(runFilter(p, [pkt]));
  });

  it('does not reorder an `or` chain when the test after it reads what the last test left in A', () => {
    // [2] == 1 || [3] == 1 || [2] == 2, else A == 3 (A is [2] there): pulling `[2] == 2`
    // up would leave [3] in A instead.
    const p = [
      ins(0x30, 2), ins(0x15, 1, 5, 0), ins(0x30, 3), ins(0x15, 1, 3, 0), ins(0x30, 2), ins(0x15, 2, 1, 0),
      ins(0x15, 3, 1, 2), ins(0x06, 1), ins(0x06, 7), RET0,
    ];
    const pkt = Uint8Array.from([0, 0, 3, 0]);
    expect(runFilter(p, [pkt])).toEqual([7]);
    expect(runFilter(optimizeProgram(p), [pkt])).toEqual([7]);
  });

  it('folds `sub x` into the test with the X it subtracted, not the X the block ends with', () => {
    // ldh [0]; sub x (X is 0); ldx #255; jeq #0: the test is [0:2] == 0, not == 255.
    const p = [ins(0x28, 0), ins(0x1c), ins(0x01, 255), ins(0x15, 0, 1, 0), ins(0x06, 0xffff), RET0];
    const pkts = [new Uint8Array(4), Uint8Array.from([0, 255, 0, 0])];
    expect(runFilter(p, pkts)).toEqual([0, 0xffff]);
    expect(runFilter(optimizeProgram(p), pkts)).toEqual([0, 0xffff]);
  });

  it('refuses a program with a backward jump', () => {
    expect(() => optimizeProgram([ins(0x05, 0xffffffff), RET0])).toThrow(/EBADPROG/);
  });
});

// ---------------------------------------------------------------- random programs

/** libpcap's bpf_filter semantics (test/support/bpf-model.ts), and whether a load went past the packet. */
function reference(prog: BpfInstruction[], pkt: Uint8Array, wirelen: number, trace?: (pc: number, a: number, x: number) => void) {
  return modelRun(prog, pkt, pkt.length, wirelen, trace);
}

// Programs that look like filters: loads at small offsets, header-length indexing,
// ALU with constants that meet each other, scratch memory, tests against a few
// constants that the packets' bytes often equal, jumps to later instructions.
const SMALL = [0, 1, 2, 3, 4, 5, 6, 8, 0xf, 0x10, 0x11, 0xff, 0x100, 0x800, 0x86dd, 0xffff, 0xffffffff];
const smallConst = fc.oneof(fc.constantFrom(...SMALL), fc.nat(300));
const anyConst = fc.oneof(smallConst, fc.integer({ min: 0, max: 0xffffffff }));
const ALU_K = [0x04, 0x14, 0x24, 0x34, 0x94, 0x54, 0x44, 0xa4, 0x64, 0x74];
const ALU_X = [0x0c, 0x1c, 0x2c, 0x3c, 0x9c, 0x5c, 0x4c, 0xac, 0x6c, 0x7c];
const JMP = [0x15, 0x25, 0x35, 0x45, 0x1d, 0x2d, 0x3d, 0x4d];

/** One instruction; `jump` is a relative distance the caller clamps into the program. */
const genIns = fc.oneof(
  { weight: 5, arbitrary: fc.record({ code: fc.constantFrom(0x20, 0x28, 0x30, 0x30, 0x28), k: fc.constantFrom(0, 1, 2, 4, 12, 14, 20) }) },
  { weight: 2, arbitrary: fc.record({ code: fc.constantFrom(0x40, 0x48, 0x50), k: fc.constantFrom(0, 1, 2, 4, 14) }) },
  { weight: 2, arbitrary: fc.record({ code: fc.constant(0xb1), k: fc.constantFrom(0, 1, 14) }) },
  { weight: 2, arbitrary: fc.record({ code: fc.constantFrom(0x00, 0x01), k: smallConst }) },
  { weight: 1, arbitrary: fc.record({ code: fc.constantFrom(0x80, 0x81, 0x84, 0x07, 0x87, 0x07), k: fc.constant(0) }) },
  {
    weight: 4,
    arbitrary: fc.record({ code: fc.constantFrom(...ALU_K), k: smallConst }).map(({ code, k }) => {
      if ((code === 0x34 || code === 0x94) && k === 0) k = 3;
      if ((code === 0x64 || code === 0x74) && k >= 32) k %= 32;
      return { code, k };
    }),
  },
  { weight: 2, arbitrary: fc.record({ code: fc.constantFrom(...ALU_X), k: fc.constant(0) }) },
  { weight: 3, arbitrary: fc.record({ code: fc.constantFrom(0x02, 0x03, 0x60, 0x61), k: fc.nat(3) }) },
  {
    weight: 7,
    arbitrary: fc.record({
      code: fc.constantFrom(...JMP),
      k: fc.oneof(smallConst, anyConst),
      jt: fc.oneof(fc.nat(4), fc.nat(40)),
      jf: fc.oneof(fc.nat(4), fc.nat(40)),
    }),
  },
  { weight: 1, arbitrary: fc.record({ code: fc.constant(0x05), k: fc.nat(6) }) },
  { weight: 2, arbitrary: fc.record({ code: fc.constant(0x06), k: fc.constantFrom(0, 0, 1, 0xffff, 0x40000) }) },
  { weight: 1, arbitrary: fc.record({ code: fc.constant(0x16), k: fc.constant(0) }) },
);
/** Returns that compute something first: the kernel's scratch check is picky about what follows them. */
const genTail = fc.constantFrom<BpfInstruction[]>(
  [ins(0x60, 1), ins(0x16)], [ins(0x60, 2), ins(0x04, 1), ins(0x16)], [ins(0x61, 0), ins(0x3c), ins(0x06, 7)],
  [ins(0x3c), ins(0x06, 1)], [ins(0x87), ins(0x16)],
);

/** A valid program: scratch words 0..3 stored first (so every read is valid), jumps clamped forward, a return at the end. */
const genProgram = fc
  .tuple(
    fc.array(fc.nat(30), { minLength: 4, maxLength: 4 }),
    fc.array(fc.oneof({ weight: 12, arbitrary: genIns.map((x) => [x]) }, { weight: 1, arbitrary: genTail }), { minLength: 1, maxLength: 50 }),
    fc.constantFrom(0, 1, 0x40000),
  )
  .map(([offsets, parts, last]) => {
    const body = parts.flat();
    const prog: BpfInstruction[] = [];
    offsets.forEach((off, i) => prog.push(ins(0x28, off), ins(0x02, i)));
    const base = prog.length;
    const n = base + body.length + 1;
    body.forEach((b, i) => {
      const pc = base + i;
      const room = n - pc - 2; // jumps may land anywhere up to the final return
      const r = b as { code: number; k: number; jt?: number; jf?: number };
      if (r.code === 0x05) prog.push(ins(0x05, Math.min(r.k, room)));
      else if ((r.code & 0x07) === 0x05) prog.push(ins(r.code, r.code & 0x08 ? 0 : r.k >>> 0, Math.min(r.jt ?? 0, room, 255), Math.min(r.jf ?? 0, room, 255)));
      else prog.push(ins(r.code, r.k >>> 0));
    });
    prog.push(ins(0x06, last));
    return prog;
  });

// Programs the way libpcap's code generator writes them: a random and/or/not
// formula over a small pool of tests — so the same tests recur, as `ip` does —
// each test reloading what it needs, arithmetic going through scratch memory,
// `tcp[k]`-style indexing through `ldxb 4*([k]&0xf)`, jumps backpatched forward.
type Test = BpfInstruction[]; // statements plus a final conditional jump (targets patched later)
type Formula = { t: 'test'; i: number } | { t: 'and' | 'or'; a: Formula; b: Formula } | { t: 'not'; a: Formula };

const VALUES = [0, 1, 2, 3, 0x101, 0x102, 0x201, 0x0203, 0x01000100, 0x03, 0x10, 0xffffffff];
// A few locations, so that different tests read the same bytes (as `ip` and `tcp` both read [12]).
const offset = fc.constantFrom(0, 2, 3, 4, 12, 14, 20, 23, 26);
const loadIns = fc.oneof(
  fc.record({ code: fc.constantFrom(0x30, 0x28, 0x20), k: offset }).map((l) => [ins(l.code, l.k)]),
  fc.tuple(fc.constantFrom(0, 14), fc.constantFrom(0x50, 0x48, 0x40), fc.constantFrom(0, 2, 4, 14)).map(([m, code, k]) => [ins(0xb1, m), ins(code, k)]),
  fc.tuple(fc.constantFrom(0, 14), fc.nat(6), fc.constantFrom(0, 2, 14)).map(([m, c, k]) => [ins(0x00, c), ins(0x02, 0), ins(0xb1, m), ins(0x60, 0), ins(0x0c), ins(0x07), ins(0x50, k)]),
  fc.constant([ins(0x80)]),
);
const aluIns = fc.oneof(
  { weight: 4, arbitrary: fc.constant<BpfInstruction[]>([]) },
  { weight: 3, arbitrary: fc.tuple(fc.constantFrom(0x54, 0x14, 0x04, 0x74, 0x64, 0x24, 0x44, 0xa4, 0x94, 0x34), fc.constantFrom(0, 1, 2, 3, 0xf, 0xff, 0x100))
      .map(([code, k]) => [ins(code, (code === 0x34 || code === 0x94) && k === 0 ? 2 : code === 0x64 || code === 0x74 ? k & 31 : k)]) },
  // A op (another load) through scratch memory, the way gencode does arithmetic.
  { weight: 2, arbitrary: fc.tuple(fc.nat(3), fc.constantFrom(0x1c, 0x0c, 0x5c, 0x2c, 0x3c, 0xac), offset).map(([m, code, k]) => [
      ins(0x02, m + 1), ins(0x30, k), ins(0x07), ins(0x60, m + 1), ins(code)]) },
  { weight: 1, arbitrary: fc.constantFrom([ins(0x54, 0)], [ins(0x24, 0)], [ins(0x07), ins(0x1c)], [ins(0x84)]) },
);
const jumpK = fc.constantFrom(0x15, 0x15, 0x25, 0x35, 0x45);
const genTest = fc.oneof(
  // A test that loads what it needs (the code generator's way).
  { weight: 6, arbitrary: fc.tuple(loadIns, aluIns, jumpK, fc.constantFrom(...VALUES), offset)
      .map(([load, alu, jump, k, other]): Test => (k === 3 ? [ins(0x30, other), ins(0x07), ...load, ...alu, ins(0x1d)] : [...load, ...alu, ins(jump, k)])) },
  // A test of what A or X already hold, whichever path led here (an optimizer's way).
  { weight: 3, arbitrary: fc.tuple(jumpK, fc.constantFrom(...VALUES), fc.constantFrom(0, 1, 2, 3)).map(([jump, k, how]): Test =>
      how === 0 ? [ins(jump, k)] : how === 1 ? [ins(0x1d)] : how === 2 ? [ins(0x87), ins(jump, k)] : [ins(0x2d)]) },
  // A or X computed from what they hold, or saved and restored.
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom<BpfInstruction[]>([ins(0x07)], [ins(0x02, 2)], [ins(0x60, 2)], [ins(0x61, 3)], [ins(0x03, 3)], [ins(0x04, 1)], [ins(0x0c)]), jumpK, fc.constantFrom(...VALUES))
      .map(([pre, jump, k]): Test => [...pre, ins(jump, k)]) },
  // An index computed in A: ld [o]; add #c; tax; ld [x+k].
  { weight: 1, arbitrary: fc.tuple(offset, fc.nat(8), fc.constantFrom(0x50, 0x48), fc.constantFrom(0, 2, 4), jumpK, fc.constantFrom(...VALUES))
      .map(([o, c, code, k, jump, v]): Test => [ins(0x30, o), ins(0x04, c), ins(0x07), ins(code, k), ins(jump, v)]) },
  // A division whose result is not what is tested.
  { weight: 1, arbitrary: fc.tuple(offset, offset, jumpK, fc.constantFrom(...VALUES))
      .map(([a, b, jump, k]): Test => [ins(0x30, a), ins(0x07), ins(0x28, b), ins(0x3c), ins(0x28, b), ins(jump, k)]) },
);
const formula = (tests: number): fc.Arbitrary<Formula> =>
  fc.letrec<{ f: Formula }>((tie) => ({
    f: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      { weight: 3, arbitrary: fc.nat(tests - 1).map((i): Formula => ({ t: 'test', i })) },
      { weight: 2, arbitrary: fc.record({ t: fc.constantFrom('and' as const, 'or' as const), a: tie('f'), b: tie('f') }) },
      { weight: 1, arbitrary: fc.record({ t: fc.constant('not' as const), a: tie('f') }) },
    ),
  })).f;

/** Compiles a formula with forward jumps only (null if an offset would not fit in 8 bits). */
function compile(f: Formula, tests: Test[], accept: number): BpfInstruction[] | null {
  const code: BpfInstruction[] = [];
  type Hole = { pc: number; side: 'jt' | 'jf' };
  const patch = (holes: Hole[], to: number) => {
    for (const h of holes) code[h.pc] = { ...code[h.pc], [h.side]: to - (h.pc + 1) };
  };
  const walk = (g: Formula): { t: Hole[]; f: Hole[] } => {
    if (g.t === 'test') {
      code.push(...tests[g.i].map((x) => ({ ...x })));
      const pc = code.length - 1;
      return { t: [{ pc, side: 'jt' }], f: [{ pc, side: 'jf' }] };
    }
    if (g.t === 'not') {
      const r = walk(g.a);
      return { t: r.f, f: r.t };
    }
    const a = walk(g.a);
    patch(g.t === 'and' ? a.t : a.f, code.length);
    const b = walk(g.b);
    return g.t === 'and' ? { t: b.t, f: [...a.f, ...b.f] } : { t: [...a.t, ...b.t], f: b.f };
  };
  const r = walk(f);
  patch(r.t, code.length);
  code.push(ins(0x06, accept));
  patch(r.f, code.length);
  code.push(RET0);
  return code.every((x) => x.jt <= 255 && x.jf <= 255 && x.jt >= 0 && x.jf >= 0) ? code : null;
}

/** A formula's program, after a prologue that gives A, X and M[0..3] packet values. */
const genFilter = fc
  .tuple(fc.array(genTest, { minLength: 1, maxLength: 7 }), fc.constantFrom(1, 0x40000), fc.array(offset, { minLength: 4, maxLength: 4 }), offset, offset)
  .chain(([tests, accept, mem, x, a]) => formula(tests.length).map((f) => {
    const body = compile(f, tests, accept);
    if (!body) return null;
    const prologue: BpfInstruction[] = [];
    mem.forEach((o, i) => prologue.push(ins(0x28, o), ins(0x02, i)));
    prologue.push(ins(0x30, x), ins(0x07), ins(0x28, a));
    return [...prologue, ...body];
  }))
  .filter((p): p is BpfInstruction[] => p !== null);

/**
 * Chains of `or` or `and` over tests of two locations, the shape libpcap's pull-ups
 * reorder (`host a or host b` tests [26], [30], [26], [30]), inside a larger formula
 * so that what follows the chain may read what its tests leave in A and X.
 */
const chainTest = fc.oneof(
  { weight: 5, arbitrary: fc.tuple(fc.constantFrom(12, 14), fc.constantFrom(0x28, 0x30), fc.constantFrom(0, 1, 2, 3, 0x101))
      .map(([o, code, k]): Test => [ins(code, o), ins(0x15, k)]) },
  { weight: 2, arbitrary: fc.tuple(fc.constantFrom(0, 2), fc.constantFrom(0, 1, 2, 0x101))
      .map(([k, v]): Test => [ins(0xb1, 14), ins(0x48, k), ins(0x15, v)]) },
  { weight: 2, arbitrary: fc.tuple(jumpK, fc.constantFrom(0, 1, 2, 3)).map(([jump, k]): Test => [ins(jump, k)]) },
  { weight: 1, arbitrary: fc.constantFrom<Test>([ins(0x1d)], [ins(0x87), ins(0x15, 1)], [ins(0x07), ins(0x15, 2)]) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom(12, 14), fc.constantFrom(0, 1)).map(([o, k]): Test => [ins(0x30, o), ins(0x07), ins(0x28, o), ins(0x3c), ins(0x28, o), ins(0x15, k)]) },
);
const genChain = fc
  .tuple(fc.array(chainTest, { minLength: 3, maxLength: 7 }), fc.array(genTest, { minLength: 1, maxLength: 3 }), fc.boolean(), fc.constantFrom('and' as const, 'or' as const), fc.boolean(), fc.array(offset, { minLength: 4, maxLength: 4 }))
  .chain(([chain, rest, orChain, join, chainFirst, mem]) => formula(rest.length).map((g) => {
    let f: Formula = { t: 'test', i: chain.length - 1 };
    for (let i = chain.length - 2; i >= 0; i--) f = { t: orChain ? 'or' : 'and', a: { t: 'test', i }, b: f };
    const shifted = (h: Formula): Formula =>
      h.t === 'test' ? { t: 'test', i: h.i + chain.length } : h.t === 'not' ? { t: 'not', a: shifted(h.a) } : { t: h.t, a: shifted(h.a), b: shifted(h.b) };
    const whole: Formula = chainFirst ? { t: join, a: f, b: shifted(g) } : { t: join, a: shifted(g), b: f };
    const body = compile(whole, [...chain, ...rest], 0x40000);
    if (!body) return null;
    const prologue: BpfInstruction[] = [];
    mem.forEach((o, i) => prologue.push(ins(0x28, o), ins(0x02, i)));
    return [...prologue, ins(0x30, 14), ins(0x07), ins(0x28, 12), ...body];
  }))
  .filter((p): p is BpfInstruction[] => p !== null);

/**
 * Makes tests meaningful: runs the program on a seed packet and sets the constant
 * of some comparisons to the value A actually had there (or one off), a few times
 * over as control flow shifts.
 */
function tune(prog: BpfInstruction[], seed: Uint8Array, choices: number[]): BpfInstruction[] {
  const p = prog.map((x) => ({ ...x }));
  let c = 0;
  for (let round = 0; round < 3; round++) {
    const seen = new Map<number, number>();
    reference(p, seed, seed.length, (pc, a) => {
      if (!seen.has(pc)) seen.set(pc, a);
    });
    for (const [pc, a] of seen) {
      const x = p[pc];
      if ((x.code & 0x07) !== 0x05 || x.code === 0x05 || (x.code & 0x08) !== 0) continue;
      const choice = choices[c++ % choices.length];
      if (choice === 1) x.k = a >>> 0;
      else if (choice === 2) x.k = (a + 1) >>> 0;
      else if (choice === 3 && (x.code & 0xf0) === 0x40) x.k = a === 0 ? 1 : (a & -a) >>> 0;
    }
  }
  return p;
}

/** A seed packet (bytes 0..3, or anything) and variants with a few bytes changed. */
const packets = fc
  .tuple(fc.uint8Array({ minLength: 112, maxLength: 112 }), fc.boolean(), fc.array(fc.array(fc.tuple(fc.nat(111), fc.nat(255)), { maxLength: 3 }), { minLength: 6, maxLength: 12 }))
  .map(([bytes, small, edits]) => {
    const seed = small ? bytes.map((x) => x & 3) : bytes;
    const list = [seed, ...edits.map((e) => {
      const d = seed.slice();
      for (const [i, v] of e) d[i] = small ? v & 3 : v;
      return d;
    })];
    return list.map((data, i) => ({ data, wireLen: data.length + (i % 3) * 7 }));
  });
const choices = fc.array(fc.constantFrom(0, 1, 1, 2, 3), { minLength: 1, maxLength: 16 });

function sameVerdicts(prog: BpfInstruction[], packets: { data: Uint8Array; wireLen: number }[], count: (n: number) => void): BpfInstruction[] {
  validateProgram(prog);
  const opt = optimizeProgram(prog);
  validateProgram(opt);
  const ours = runFilter(opt, packets);
  let n = 0;
  packets.forEach((p, i) => {
    const ref = reference(prog, p.data, p.wireLen);
    if (ref.outOfBounds) return;
    n++;
    if (ours[i] !== ref.verdict) {
      throw new Error(`verdict ${ours[i]} != ${ref.verdict} for packet ${i}\ninput ${JSON.stringify(prog)}\noutput ${JSON.stringify(opt)}`);
    }
  });
  count(n);
  return opt;
}

describe('optimizer on random programs (fast-check)', () => {
  it('keeps every verdict of gencode-like programs where the input reads nothing past the packet', () => {
    let compared = 0, shrunk = 0, total = 0;
    fc.assert(
      fc.property(genFilter, packets, choices, (raw, pkts, ch) => {
        const prog = tune(raw, pkts[0].data, ch);
        const opt = sameVerdicts(prog, pkts, (n) => (compared += n));
        total += prog.length;
        shrunk += opt.length;
        expect(opt.length).toBeLessThanOrEqual(prog.length);
      }),
      { numRuns: 1500 },
    );
    expect(compared).toBeGreaterThan(5000);
    console.log(`gencode-like random programs: ${compared} verdicts compared; ${total} instructions became ${shrunk}`);
  });

  it('keeps every verdict of or/and chains (what pull-ups reorder) where the input reads nothing past the packet', () => {
    let compared = 0;
    fc.assert(
      fc.property(genChain, packets, choices, (raw, pkts, ch) => {
        const prog = tune(raw, pkts[0].data, ch);
        const opt = sameVerdicts(prog, pkts, (n) => (compared += n));
        expect(opt.length).toBeLessThanOrEqual(prog.length);
      }),
      { numRuns: 1500 },
    );
    expect(compared).toBeGreaterThan(5000);
  });

  it('keeps every verdict of random instruction mixes where the input reads nothing past the packet', () => {
    let compared = 0;
    fc.assert(
      fc.property(genProgram, packets, choices, (raw, pkts, ch) => {
        const prog = tune(raw, pkts[0].data, ch);
        const opt = sameVerdicts(prog, pkts, (n) => (compared += n));
        expect(opt.length).toBeLessThanOrEqual(prog.length + 2);
      }),
      { numRuns: 1500 },
    );
    expect(compared).toBeGreaterThan(5000);
  });

  it('never throws and always validates on arbitrary instruction mixes', () => {
    const anyIns = fc.record({
      code: fc.constantFrom(0x04, 0x0c, 0x14, 0x1c, 0x24, 0x2c, 0x3c, 0x9c, 0x54, 0x5c, 0x44, 0x4c, 0xa4, 0xac, 0x6c, 0x7c, 0x84,
        0x20, 0x28, 0x30, 0x40, 0x48, 0x50, 0x80, 0x00, 0x81, 0xb1, 0x01, 0x07, 0x87, 0x06, 0x16, 0x05, 0x15, 0x1d, 0x25, 0x2d, 0x35, 0x3d, 0x45, 0x4d),
      jt: fc.nat(8),
      jf: fc.nat(8),
      k: fc.oneof(fc.nat(80), fc.constant(0xfffffff0), fc.constant(0xfffff000), fc.integer({ min: 0, max: 0xffffffff })),
    });
    fc.assert(
      fc.property(fc.array(anyIns, { minLength: 1, maxLength: 40 }), (raw) => {
        const n = raw.length + 1;
        const prog = raw.map((r, pc) => {
          const room = n - pc - 2;
          if (r.code === 0x05) return ins(0x05, Math.min(r.k, room));
          if ((r.code & 0x07) === 0x05) return ins(r.code, r.k, Math.min(r.jt, room), Math.min(r.jf, room));
          return ins(r.code, r.k);
        });
        prog.push(ins(0x16));
        try {
          validateProgram(prog);
        } catch {
          return; // the input must be valid
        }
        const opt = optimizeProgram(prog);
        validateProgram(opt);
        const twice = optimizeProgram(opt);
        validateProgram(twice);
        expect(twice.length).toBeLessThanOrEqual(opt.length);
      }),
      { numRuns: 1500 },
    );
  });

  it('is idempotent-ish: optimizing its own output never grows it', () => {
    fc.assert(
      fc.property(genProgram, (prog) => {
        const once = optimizeProgram(prog);
        const twice = optimizeProgram(once);
        expect(twice.length).toBeLessThanOrEqual(once.length);
      }),
      { numRuns: 400 },
    );
  });
});
