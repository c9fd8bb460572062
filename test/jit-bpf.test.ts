// The classic BPF JIT is the interpreter, compiled: for every program of the filter
// corpora (netpd's compiler with and without its optimizer, and libpcap's own -ddd
// programs), the benchmark programs and random valid programs, the compiled module
// returns exactly the interpreter's u32 on every packet of every reference capture, on
// every truncation of a sample of them and on runt frames. classify's first-match
// indices equal running the interpreter program by program.
import { describe, it, expect, beforeAll } from 'vitest';
import { readFileSync, readdirSync } from 'node:fs';
import fc from 'fast-check';
import { Arena } from '../bindings/arena.js';
import { BpfFilter, formatDdd, parseDdd, validateProgram, type BpfInstruction, type BpfProgram } from '../bindings/bpf.js';
import { compileFilter } from '../bindings/filter/compile.js';
import { NetpdError } from '../bindings/errors.js';
import {
  bpfModuleBytes, compileBpfModule, compileBpfModuleAsync, instantiateBpfModule, type BpfModuleExports,
} from '../bindings/jit/bpf-jit.js';
import { arenaMemoryLimits, burstLayout } from '../bindings/jit/burst.js';
import { loadCapture } from './support/captures.js';
import { VALID_CODES } from './support/bpf-model.js';

interface Case { expr: string; optimized: boolean; ddd: string }
interface Corpus { captures: string[]; cases: Case[] }
const corpora = ['./fixtures/bpf/libpcap.json', './fixtures/filter/libpcap.json']
  .map((f) => JSON.parse(readFileSync(new URL(f, import.meta.url), 'utf8')) as Corpus);
const captures = [...new Set(corpora.flatMap((c) => c.captures))];
const benchPrograms = ['one', 'ten'].flatMap((dir) => {
  const url = new URL(`../bench/programs/${dir}/`, import.meta.url);
  return readdirSync(url).filter((f) => f.endsWith('.ddd')).sort()
    .map((f) => ({ name: `bench/programs/${dir}/${f}`, program: parseDdd(readFileSync(new URL(f, url), 'utf8')) }));
});

const arena = Arena.create({ slotSize: 4096, slotCount: 16384, controlBytes: 32 * 1024 * 1024 });
const layout = burstLayout(arena);
const limits = arenaMemoryLimits(arena);
const compile = (programs: readonly BpfProgram[]) => instantiateBpfModule(compileBpfModule(programs, layout, limits), arena.memory);

/** A set of slots with their addresses and lengths copied out, so the JIT's side of a comparison is a tight loop. */
interface Burst { vec: Uint32Array; n: number; pkt: Uint32Array; cap: Uint32Array; wire: Uint32Array; label: string[] }

function burstOf(slots: readonly number[], label: readonly string[]): Burst {
  const n = slots.length;
  const vec = arena.burstVector(n);
  vec.set(slots);
  return {
    vec, n, label: [...label],
    pkt: Uint32Array.from(slots, (s) => arena.dataOffset(s)),
    cap: Uint32Array.from(slots, (s) => arena.capLen(s)),
    wire: Uint32Array.from(slots, (s) => arena.wireLen(s)),
  };
}

/** Puts packets in fresh slots: `bytes` are copied whole (bytes past capLen stay in the slot, where a stray read would find them). */
function store(packets: readonly { bytes: Uint8Array; capLen: number; wireLen: number }[]): number[] {
  const vec = arena.burstVector(packets.length);
  expect(arena.allocBurst(vec, packets.length)).toBe(packets.length);
  packets.forEach((p, i) => {
    arena.bytes.set(p.bytes, arena.dataOffset(vec[i]));
    arena.setPacket(vec[i], p.capLen, p.wireLen, 0, 0, 0);
  });
  return [...vec];
}

/** A small seeded generator, so the fixed packet sets are the same on every run. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

const scratchOut = arena.burstVector(32768);
const jitOut = new Uint32Array(32768);

/** Runs program `index` of `jit` and the interpreter over `burst`; returns the first disagreement, if any. */
function disagreement(jit: BpfModuleExports, index: number, program: BpfProgram, burst: Burst): string | undefined {
  new BpfFilter(arena, program).run(burst.vec, burst.n, scratchOut);
  const f = jit[`filter_${index}`];
  for (let i = 0; i < burst.n; i++) jitOut[i] = f(burst.pkt[i], burst.cap[i], burst.wire[i]) >>> 0;
  for (let i = 0; i < burst.n; i++) {
    if (jitOut[i] !== scratchOut[i]) {
      return `${burst.label[i]} (caplen ${burst.cap[i]}, wirelen ${burst.wire[i]}): jit ${jitOut[i]}, interpreter ${scratchOut[i]}`;
    }
  }
  return undefined;
}

/** Compares every program over `burst`, compiling them into modules of `perModule` programs. */
function compareAll(named: readonly { name: string; program: BpfProgram }[], burst: Burst, perModule = 64): string[] {
  const mismatches: string[] = [];
  for (let at = 0; at < named.length; at += perModule) {
    const chunk = named.slice(at, at + perModule);
    const jit = compile(chunk.map((c) => c.program));
    chunk.forEach((c, i) => {
      const d = disagreement(jit, i, c.program, burst);
      if (d) mismatches.push(`${c.name}: ${d}`);
    });
  }
  return mismatches;
}

/** Every distinct valid program of the corpora: netpd's, optimized and not, and libpcap's own. */
function corpusPrograms(): { name: string; program: BpfProgram }[] {
  const seen = new Map<string, { name: string; program: BpfProgram }>();
  const add = (name: string, program: BpfProgram) => {
    const key = formatDdd(program);
    if (!seen.has(key)) seen.set(key, { name, program });
  };
  for (const expr of new Set(corpora.flatMap((c) => c.cases.map((k) => k.expr)))) {
    for (const optimize of [true, false]) {
      try {
        add(`${optimize ? '' : '-O '}"${expr}"`, compileFilter(expr, { optimize }));
      } catch (e) {
        // Refusals are filter-compile.test.ts's subject; here only what compiles runs.
        if (!(e instanceof NetpdError) || e.code !== 'EFILTER') throw e;
      }
    }
  }
  for (const c of corpora.flatMap((k) => k.cases)) {
    const program = parseDdd(c.ddd);
    try {
      validateProgram(program);
    } catch {
      continue;   // protochain's backward jump: the Linux rules refuse it (bpf-libpcap.test.ts)
    }
    add(`libpcap ${c.optimized ? '' : '-O '}"${c.expr}"`, program);
  }
  for (const b of benchPrograms) add(b.name, b.program);
  return [...seen.values()];
}

describe('BPF JIT ≡ interpreter', () => {
  let whole: Burst;
  let cut: Burst;
  let programs: { name: string; program: BpfProgram }[];

  beforeAll(() => {
    const slots: number[] = [];
    const labels: string[] = [];
    const samples: { bytes: Uint8Array; capLen: number; wireLen: number; label: string }[] = [];
    for (const name of captures) {
      const { vec, n } = loadCapture(arena, name, 1024);
      for (let i = 0; i < n; i++) {
        slots.push(vec[i]);
        labels.push(`${name} #${i + 1}`);
      }
      // Five packets of each capture, cut at every length from 0 to whole.
      for (const i of new Set([0, n >> 2, n >> 1, (3 * n) >> 2, n - 1])) {
        const s = vec[i];
        const capLen = arena.capLen(s);
        const bytes = arena.bytes.slice(arena.dataOffset(s), arena.dataOffset(s) + capLen);
        for (let len = 0; len <= capLen; len++) samples.push({ bytes, capLen: len, wireLen: arena.wireLen(s), label: `${name} #${i + 1} cut to ${len}` });
      }
    }
    // Runt frames: 0 to 20 random bytes, with the wire length equal or longer.
    const random = prng(0x5eed);
    for (let len = 0; len <= 20; len++) {
      for (let j = 0; j < 8; j++) {
        const bytes = Uint8Array.from({ length: 64 }, () => Math.floor(random() * 256));
        samples.push({ bytes, capLen: len, wireLen: j < 4 ? len : len + 60, label: `runt ${len}/${j}` });
      }
    }
    whole = burstOf(slots, labels);
    cut = burstOf(store(samples), samples.map((s) => s.label));
    programs = corpusPrograms();
  });

  it('covers the corpora: over 2000 distinct programs, every capture, truncations and runts', () => {
    expect(programs.length).toBeGreaterThan(2000);
    expect(whole.n).toBeGreaterThan(1800);
    expect(cut.n).toBeGreaterThan(6000);
  });

  it('returns the interpreter\'s value for every corpus and benchmark program on every captured packet', () => {
    expect(compareAll(programs, whole)).toEqual([]);
  });

  it('returns the interpreter\'s value on every truncation of sample packets and on runt frames', () => {
    expect(compareAll(programs, cut)).toEqual([]);
  });

  it('BpfFilter with jit gives the interpreter\'s verdicts (the verdicts export), for whole and cut packets', () => {
    const jitOut = arena.burstVector(cut.n);
    for (const { program } of programs.filter((_, i) => i % 10 === 0)) {
      for (const burst of [whole, cut]) {
        const compiled = new BpfFilter(arena, program, { jit: true });
        expect(compiled.jit).toBe(true);
        const accepted = compiled.run(burst.vec, burst.n, jitOut);
        const expected = new BpfFilter(arena, program).run(burst.vec, burst.n, scratchOut);
        expect(accepted).toBe(expected);
        expect(jitOut.subarray(0, burst.n)).toEqual(scratchOut.subarray(0, burst.n));
      }
    }
  });

  it('classify gives each packet the index of the first program that accepts it, as the interpreter program by program', () => {
    const ten = benchPrograms.filter((b) => b.name.includes('/ten/')).map((b) => b.program);
    const sets = [ten, [...ten].reverse(), programs.slice(0, 200).map((p) => p.program), []];
    const results = arena.burstVector(whole.n);
    for (const set of sets) {
      const expected = new Uint32Array(whole.n).fill(set.length);
      set.forEach((program, i) => {
        new BpfFilter(arena, program).run(whole.vec, whole.n, scratchOut);
        for (let j = 0; j < whole.n; j++) if (expected[j] === set.length && scratchOut[j] !== 0) expected[j] = i;
      });
      const jit = compile(set);
      const matched = jit.classify(whole.vec.byteOffset, whole.n, results.byteOffset);
      expect([...results]).toEqual([...expected]);
      expect(matched).toBe(expected.filter((e) => e < set.length).length);
    }
    expect(compile(ten).classify(whole.vec.byteOffset, 0, results.byteOffset)).toBe(0);
  });
});

// Random programs. Raw instructions are drawn from every opcode Linux accepts, with
// operands that hit the edges (offsets around a short packet's end, values near 2^32,
// ancillary offsets), then repaired into programs the validator accepts.
const SKF_AD_OFF = 0xfffff000;
const RET_K = 0x06, RET_A = 0x16;
const operand = fc.oneof(
  fc.integer({ min: 0, max: 72 }),
  fc.constantFrom(31, 32, 33, 0x7fffffff, 0x80000000, 0xfffffffc, 0xfffffffd, 0xfffffffe, 0xffffffff, SKF_AD_OFF, SKF_AD_OFF + 4, SKF_AD_OFF + 0x3c),
  fc.integer({ min: 0, max: 0xffffffff }),
);
const rawInstruction = fc.record({ code: fc.constantFrom(...VALID_CODES), jt: fc.nat(255), jf: fc.nat(255), k: operand });
const randomProgram = fc.array(rawInstruction, { minLength: 1, maxLength: 48 }).map(repair);

function repair(raw: readonly BpfInstruction[]): BpfInstruction[] {
  const n = raw.length;
  const program = raw.map(({ code, jt, jf, k }, pc) => {
    const room = n - pc - 1;
    if (pc === n - 1 && (code & 0x07) !== 0x06) code = k & 1 ? RET_A : RET_K;
    if (code === 0x05) k %= room;
    else if ((code & 0x07) === 0x05) { jt %= room; jf %= room; }
    if ((code === 0x34 || code === 0x94) && k === 0) k = 1;
    if (code === 0x64 || code === 0x74) k %= 32;
    if (code === 0x60 || code === 0x61 || code === 0x02 || code === 0x03) k %= 16;
    if ((code === 0x20 || code === 0x28 || code === 0x30) && k >= SKF_AD_OFF) k = SKF_AD_OFF + ((k - SKF_AD_OFF) % 64 & ~3);
    return { code, jt, jf, k };
  });
  // A scratch word read before it is stored on every path becomes a constant load.
  for (;;) {
    try {
      validateProgram(program);
      return program;
    } catch (e) {
      const pc = Number((e as NetpdError).details.instruction);
      program[pc] = { ...program[pc], code: program[pc].code === 0x60 ? 0x00 : 0x01 };
    }
  }
}

const randomPacket = fc.record({
  bytes: fc.uint8Array({ minLength: 0, maxLength: 80 }),
  wire: fc.oneof(fc.constant(0), fc.nat(1600), fc.constant(0xffffffff)),
}).map(({ bytes, wire }) => ({ bytes, capLen: bytes.length, wireLen: Math.min(0xffffffff, bytes.length + wire) }));

// Slots reused by every property run; each packet's slot is first filled with other
// bytes, so a read past the captured length would see something the interpreter cannot.
const propertyVec = arena.burstVector(16);
arena.allocBurst(propertyVec, 16);
function propertyBurst(packets: readonly { bytes: Uint8Array; capLen: number; wireLen: number }[]): Burst {
  const slots = [...propertyVec.subarray(0, packets.length)];
  packets.forEach((p, i) => {
    const at = arena.dataOffset(slots[i]);
    arena.bytes.fill(0xa5, at, at + 128);
    arena.bytes.set(p.bytes, at);
    arena.setPacket(slots[i], p.capLen, p.wireLen, 0, 0, 0);
  });
  return {
    vec: propertyVec, n: packets.length, label: packets.map((p, i) => `packet ${i} [${[...p.bytes.subarray(0, p.capLen)].join(',')}]`),
    pkt: Uint32Array.from(slots, (s) => arena.dataOffset(s)),
    cap: Uint32Array.from(packets, (p) => p.capLen),
    wire: Uint32Array.from(packets, (p) => p.wireLen),
  };
}

/** Every program of `programs`, compiled into one module, agrees with the interpreter on every packet, and so does classify. */
function agrees(programs: readonly BpfProgram[], packets: readonly { bytes: Uint8Array; capLen: number; wireLen: number }[]): void {
  const burst = propertyBurst(packets);
  const jit = compile(programs);
  const first = new Array<number>(burst.n).fill(programs.length);
  programs.forEach((program, i) => {
    expect(disagreement(jit, i, program, burst), formatDdd(program)).toBeUndefined();
    for (let j = 0; j < burst.n; j++) if (first[j] === programs.length && scratchOut[j] !== 0) first[j] = i;
  });
  jit.classify(burst.vec.byteOffset, burst.n, scratchOut.byteOffset);
  expect([...scratchOut.subarray(0, burst.n)]).toEqual(first);
}

describe('BPF JIT ≡ interpreter on random programs', () => {
  it('random valid programs (up to four in a module) on random packets', () => {
    fc.assert(fc.property(
      fc.array(randomProgram, { minLength: 1, maxLength: 4 }),
      fc.array(randomPacket, { minLength: 1, maxLength: 16 }),
      agrees,
    ), { numRuns: 3000 });
  });

  it('loads at and around the end of the packet: absolute, ancillary, 4*([k]&0xf), and [x+k] with X near 2^32', () => {
    const load = fc.record({
      len: fc.integer({ min: 0, max: 70 }),
      size: fc.constantFrom(1, 2, 4),
      mode: fc.constantFrom('abs', 'msh', 'ind', 'wrap', 'ancillary'),
      k: fc.integer({ min: 0, max: 72 }),
      d: fc.integer({ min: -6, max: 3 }),
      fill: fc.uint8Array({ minLength: 80, maxLength: 80 }),
    });
    fc.assert(fc.property(load, ({ len, size, mode, k, d, fill }) => {
      const code = { 1: 0x10, 2: 0x08, 4: 0x00 }[size]!;
      const near = Math.max(0, len - size + d);
      const ret = { code: RET_A, jt: 0, jf: 0, k: 0 };
      let program: BpfInstruction[];
      if (mode === 'abs') program = [{ code: 0x20 | code, jt: 0, jf: 0, k: near }, ret];
      else if (mode === 'ancillary') program = [{ code: 0x20 | code, jt: 0, jf: 0, k: SKF_AD_OFF + 4 * (k % 16) }, ret];
      else if (mode === 'msh') program = [{ code: 0xb1, jt: 0, jf: 0, k: near }, { code: 0x87, jt: 0, jf: 0, k: 0 }, ret];
      else {
        // X + k lands just before, at or past the end; with 'wrap', X + k wraps past 2^32.
        const x = mode === 'wrap' ? (2 ** 32 - k + d) >>> 0 : (near - k) >>> 0;
        program = [{ code: 0x01, jt: 0, jf: 0, k: x }, { code: 0x40 | code, jt: 0, jf: 0, k }, ret];
      }
      agrees([program], [{ bytes: fill, capLen: len, wireLen: len }]);
    }), { numRuns: 3000 });
  });

  it('ALU by X: division and modulo by zero reject, shifts by 32 or more give 0', () => {
    const x = fc.oneof(fc.constantFrom(0, 1, 31, 32, 33, 63, 64, 0x80000000, 0xffffffff), fc.integer({ min: 0, max: 0xffffffff }));
    const a = fc.oneof(fc.constantFrom(0, 1, 0x80000000, 0xffffffff), fc.integer({ min: 0, max: 0xffffffff }));
    fc.assert(fc.property(a, x, fc.constantFrom(0x3c, 0x9c, 0x6c, 0x7c, 0x0c, 0x1c, 0x2c, 0x5c, 0x4c, 0xac), (av, xv, op) => {
      // ld #a; ldx #x; op x; ret a — and the same once more after it, so a rejected first op shows.
      const program = [
        { code: 0x00, jt: 0, jf: 0, k: av }, { code: 0x01, jt: 0, jf: 0, k: xv }, { code: op, jt: 0, jf: 0, k: 0 },
        { code: 0x15, jt: 0, jf: 1, k: 0 }, { code: RET_K, jt: 0, jf: 0, k: 7 }, { code: RET_A, jt: 0, jf: 0, k: 0 },
      ];
      agrees([program], [{ bytes: new Uint8Array(0), capLen: 0, wireLen: 0 }]);
    }), { numRuns: 2000 });
  });
});

/** Block-top bounds checks in a module: `local.get buflen; i32.const N; i32.lt_u; if`. */
function boundsChecks(bytes: Uint8Array): number[] {
  const found: number[] = [];
  for (let i = 0; i + 3 < bytes.length; i++) {
    if (bytes[i] !== 0x20 || bytes[i + 1] !== 0x01 || bytes[i + 2] !== 0x41) continue;
    let j = i + 3, v = 0n, shift = 0n;
    for (; bytes[j] & 0x80; j++, shift += 7n) v |= BigInt(bytes[j] & 0x7f) << shift;
    v |= BigInt(bytes[j] & 0x7f) << shift;
    if (bytes[j + 1] === 0x49 && bytes[j + 2] === 0x04 && bytes[j + 3] === 0x40) found.push(Number(BigInt.asUintN(32, BigInt.asIntN(Number(shift) + 7, v))));
  }
  return found;
}

const ins = (code: number, k = 0, jt = 0, jf = 0): BpfInstruction => ({ code, jt, jf, k });

describe('bounds checks are merged', () => {
  it('one check per basic block, against its largest end offset', () => {
    // ldh [12]; ldb [23]; ld [26]; ld [30]; ldb [14]; ret a
    const program = [ins(0x28, 12), ins(0x30, 23), ins(0x20, 26), ins(0x20, 30), ins(0x30, 14), ins(RET_A)];
    expect(boundsChecks(bpfModuleBytes([program], layout, limits))).toEqual([34]);
  });

  it('none where every path into a block has already checked as much; [x+k] adds only its X compare', () => {
    const program = [
      ins(0x28, 12),               // 0 ldh [12]         check 14
      ins(0x15, 0x800, 0, 2),      // 1 jeq #0x800, 2, 4
      ins(0x20, 30),               // 2 ld [30]          check 34
      ins(0x05, 1),                // 3 ja 5
      ins(0x30, 29),               // 4 ldb [29]         check 30
      ins(0x20, 26),               // 5 ld [26]          both paths proved 30: no check
      ins(0xb1, 14),               // 6 ldxb 4*([14]&0xf)
      ins(0x48, 20),               // 7 ldh [x+20]       needs 22 whatever X: proven
      ins(RET_A),
    ];
    expect(boundsChecks(bpfModuleBytes([program], layout, limits))).toEqual([14, 34, 30]);
  });

  it('libpcap\'s "tcp port 80" checks 5 times where the interpreter checks up to 9 loads', () => {
    const tcp80 = benchPrograms.find((b) => b.name.endsWith('one/00.ddd'))!.program;
    expect(boundsChecks(bpfModuleBytes([tcp80], layout, limits))).toEqual([14, 21, 56, 58, 24]);
  });

  it('a block that needs more than 2^32 - 1 bytes, or is entered only through one, rejects without a check', () => {
    const packet = [{ bytes: new Uint8Array(64), capLen: 64, wireLen: 64 }];
    const msh = [ins(0xb1, 0xffffffff), ins(RET_K, 1)];
    expect(boundsChecks(bpfModuleBytes([msh], layout, limits))).toEqual([]);
    agrees([msh], packet);
    // ld [x+0xfffffffd]; ja 3; add #0; ldh [x+0xffffffff]; ret #0 (found by the random programs below)
    const chained = [ins(0x40, 0xfffffffd), ins(0x05, 1), ins(0x04, 0), ins(0x48, 0xffffffff), ins(RET_K, 0)];
    expect(boundsChecks(bpfModuleBytes([chained], layout, limits))).toEqual([]);
    agrees([chained], packet);
  });
});

describe('compiling', () => {
  it('names the program and instruction of an invalid program (EBADPROG)', () => {
    const good = [ins(RET_K, 1)];
    const bad = [ins(0x20, 0), ins(0x15, 0, 5, 0), ins(RET_A)];
    let error: unknown;
    try { bpfModuleBytes([good, bad], layout, limits); } catch (e) { error = e; }
    expect(error).toBeInstanceOf(NetpdError);
    expect((error as NetpdError).code).toBe('EBADPROG');
    expect((error as NetpdError).message).toMatch(/^EBADPROG: program 1: instruction 1 .*jump target outside the program/);
    expect((error as NetpdError).details).toMatchObject({ program: 1, instruction: 1 });
  });

  it('refuses a layout that is not u32 addresses (EINVAL)', () => {
    expect(() => bpfModuleBytes([], { ...layout, data: -1 }, limits)).toThrow(/EINVAL: burst layout field data/);
    expect(() => bpfModuleBytes([], { ...layout, meta: 2 ** 32 }, limits)).toThrow(/EINVAL: burst layout field meta/);
  });

  it('compiles the largest program, 4096 instructions with a jump target at every other one', () => {
    const program = Array.from({ length: 4096 }, (_, pc) =>
      pc === 4095 ? ins(RET_A) : pc % 2 === 0 ? ins(0x30, (pc >> 1) % 60) : ins(0x15, pc & 0xff, 0, 1));
    const packets = [0, 30, 59, 60].map((len) => ({ bytes: Uint8Array.from({ length: 64 }, (_, i) => (i * 37) & 0xff), capLen: len, wireLen: len }));
    agrees([program], packets);
  });

  it('compiles asynchronously to the same module', async () => {
    const programs = benchPrograms.map((b) => b.program);
    const module = await compileBpfModuleAsync(programs, layout, limits);
    expect(WebAssembly.Module.exports(module).map((e) => e.name)).toEqual([...programs.map((_, i) => `filter_${i}`), 'classify', 'verdicts']);
    const packet = [{ bytes: new Uint8Array(60), capLen: 60, wireLen: 60 }];
    const burst = propertyBurst(packet);
    const jit = instantiateBpfModule(module, arena.memory);
    programs.forEach((program, i) => expect(disagreement(jit, i, program, burst)).toBeUndefined());
  });
});
