// The WebAssembly emitter the JIT builds on: LEB128 against published vectors and by
// round trip (through our decoder and through V8's own), modules that V8 validates and
// that compute the right answers over a shared memory, and misuse refused at the call
// that commits it.
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { CodeBuilder, ModuleBuilder, sleb128, uleb128, type MemoryLimits } from '../bindings/jit/wasm.js';
import { NetpdError } from '../bindings/errors.js';

function decodeUleb(bytes: readonly number[]): bigint {
  let v = 0n;
  bytes.forEach((b, i) => { v |= BigInt(b & 0x7f) << BigInt(7 * i); });
  return v;
}

function decodeSleb(bytes: readonly number[]): bigint {
  const v = decodeUleb(bytes);
  const bits = BigInt(7 * bytes.length);
  return (bytes[bytes.length - 1] & 0x40) !== 0 ? v - (1n << bits) : v;
}

/** Only the last byte lacks the continuation bit, and no shorter encoding exists. */
function wellFormed(bytes: readonly number[]): boolean {
  return bytes.every((b, i) => (i === bytes.length - 1) === ((b & 0x80) === 0));
}

const SHARED_LIMITS: MemoryLimits = { initial: 1, maximum: 2 };
const sharedMemory = () => new WebAssembly.Memory({ initial: 1, maximum: 2, shared: true });

function instantiate<T>(mod: ModuleBuilder, memory?: WebAssembly.Memory): T {
  const bytes = mod.bytes();
  expect(WebAssembly.validate(bytes)).toBe(true);
  return new WebAssembly.Instance(new WebAssembly.Module(bytes), memory ? { env: { memory } } : {}).exports as T;
}

function expectMisuse(f: () => unknown, message: RegExp): void {
  let error: unknown;
  try { f(); } catch (e) { error = e; }
  expect(error).toBeInstanceOf(NetpdError);
  expect((error as NetpdError).code).toBe('EINVAL');
  expect((error as NetpdError).message).toMatch(message);
}

describe('LEB128', () => {
  it('encodes the published vectors', () => {
    const unsigned: [number | bigint, number[]][] = [
      [0, [0x00]], [1, [0x01]], [127, [0x7f]], [128, [0x80, 0x01]], [255, [0xff, 0x01]],
      [624485, [0xe5, 0x8e, 0x26]], [0x7fffffff, [0xff, 0xff, 0xff, 0xff, 0x07]], [0xffffffff, [0xff, 0xff, 0xff, 0xff, 0x0f]],
      [2n ** 32n, [0x80, 0x80, 0x80, 0x80, 0x10]],
      [2n ** 64n - 1n, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]],
    ];
    for (const [v, bytes] of unsigned) expect(uleb128(v), String(v)).toEqual(bytes);
    const signed: [number | bigint, number[]][] = [
      [0, [0x00]], [1, [0x01]], [-1, [0x7f]], [63, [0x3f]], [64, [0xc0, 0x00]], [-64, [0x40]], [-65, [0xbf, 0x7f]],
      [127, [0xff, 0x00]], [-128, [0x80, 0x7f]], [-123456, [0xc0, 0xbb, 0x78]],
      [0x7fffffff, [0xff, 0xff, 0xff, 0xff, 0x07]], [-0x80000000, [0x80, 0x80, 0x80, 0x80, 0x78]],
      [2n ** 63n - 1n, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00]],
      [-(2n ** 63n), [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x7f]],
    ];
    for (const [v, bytes] of signed) expect(sleb128(v), String(v)).toEqual(bytes);
  });

  it('refuses values outside the i32/u32 and i64/u64 ranges and non-integers', () => {
    for (const v of [-1, 2 ** 32, 0.5, NaN, -1n, 2n ** 64n]) expectMisuse(() => uleb128(v), /unsigned LEB128/);
    for (const v of [2 ** 31, -(2 ** 31) - 1, 1.5, 2n ** 63n, -(2n ** 63n) - 1n]) expectMisuse(() => sleb128(v), /signed LEB128/);
  });

  it('round-trips every u32, u64, i32 and i64 through the shortest well-formed encoding', () => {
    const minimal = (bytes: number[], bits: number) => expect(bytes.length).toBe(Math.max(1, Math.ceil(bits / 7)));
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xffffffff }), (v) => {
      const b = uleb128(v);
      expect(decodeUleb(b)).toBe(BigInt(v));
      expect(wellFormed(b)).toBe(true);
      minimal(b, v.toString(2).length);
    }), { numRuns: 2000 });
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (v) => {
      const b = uleb128(v);
      expect(decodeUleb(b)).toBe(v);
      expect(wellFormed(b)).toBe(true);
      minimal(b, v.toString(2).length);
    }), { numRuns: 2000 });
    // A signed value needs its magnitude's bits plus a sign bit.
    const signedBits = (v: bigint) => (v < 0n ? (-v - 1n) : v).toString(2).length + 1;
    fc.assert(fc.property(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), (v) => {
      const b = sleb128(v);
      expect(decodeSleb(b)).toBe(BigInt(v));
      expect(wellFormed(b)).toBe(true);
      minimal(b, signedBits(BigInt(v)));
    }), { numRuns: 2000 });
    fc.assert(fc.property(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), (v) => {
      const b = sleb128(v);
      expect(decodeSleb(b)).toBe(v);
      expect(wellFormed(b)).toBe(true);
      minimal(b, signedBits(v));
    }), { numRuns: 2000 });
  });

  it('round-trips i32.const and i64.const through V8\'s decoder, u32 and u64 bit patterns included', () => {
    fc.assert(fc.property(
      fc.array(fc.integer({ min: -(2 ** 31), max: 2 ** 32 - 1 }), { minLength: 1, maxLength: 20 }),
      fc.array(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 64n - 1n }), { minLength: 1, maxLength: 20 }),
      (i32s, i64s) => {
        const mod = new ModuleBuilder();
        i32s.forEach((v, i) => mod.addFunction(new CodeBuilder([], ['i32']).i32Const(v), `a${i}`));
        i64s.forEach((v, i) => mod.addFunction(new CodeBuilder([], ['i64']).i64Const(v), `b${i}`));
        const e = instantiate<Record<string, () => number | bigint>>(mod);
        i32s.forEach((v, i) => expect(e[`a${i}`]()).toBe(v | 0));
        i64s.forEach((v, i) => expect(e[`b${i}`]()).toBe(BigInt.asIntN(64, v)));
      },
    ), { numRuns: 100 });
  });
});

describe('ModuleBuilder and CodeBuilder', () => {
  it('shares one type between functions of the same signature', () => {
    const mod = new ModuleBuilder();
    mod.addFunction(new CodeBuilder(['i32'], ['i32']).localGet(0), 'f');
    mod.addFunction(new CodeBuilder(['i32'], ['i32']).localGet(0).i32Const(1).i32Add(), 'g');
    mod.addFunction(new CodeBuilder(['i32', 'i64'], []), 'h');
    mod.addFunction(new CodeBuilder(['i32'], ['i32']).i32Const(7), 'k');
    const bytes = mod.bytes();
    // The type section follows the 8-byte header: id 1, size, then the count.
    expect([bytes[8], bytes[10]]).toEqual([1, 2]);
    const e = instantiate<{ f(x: number): number; g(x: number): number; k(x: number): number }>(mod);
    expect([e.f(5), e.g(5), e.k(5)]).toEqual([5, 6, 7]);
  });

  it('imports env.memory as shared with the given limits, and links only with a shared memory', () => {
    const mod = new ModuleBuilder({ memory: SHARED_LIMITS });
    mod.addFunction(new CodeBuilder(['i32'], ['i32']).localGet(0).i32Load(), 'peek');
    const bytes = mod.bytes();
    expect(WebAssembly.validate(bytes)).toBe(true);
    const module = new WebAssembly.Module(bytes);
    expect(WebAssembly.Module.imports(module)).toEqual([{ module: 'env', name: 'memory', kind: 'memory' }]);
    const memory = sharedMemory();
    new Uint32Array(memory.buffer)[3] = 0xdeadbeef;
    const e = new WebAssembly.Instance(module, { env: { memory } }).exports as { peek(a: number): number };
    expect(e.peek(12) >>> 0).toBe(0xdeadbeef);
    expect(() => new WebAssembly.Instance(module, { env: { memory: new WebAssembly.Memory({ initial: 1, maximum: 2 }) } })).toThrow(WebAssembly.LinkError);
    expect(() => new WebAssembly.Instance(module, { env: { memory: new WebAssembly.Memory({ initial: 1, maximum: 3, shared: true }) } })).toThrow(WebAssembly.LinkError);
  });

  it('loads and stores bytes, halves and words little-endian at offset + address', () => {
    const mod = new ModuleBuilder({ memory: SHARED_LIMITS });
    // store(a, v): word at a+4, half at a+8, byte at a+10, then the sum of their loads.
    const c = new CodeBuilder(['i32', 'i32'], ['i32']);
    c.localGet(0).localGet(1).i32Store(4);
    c.localGet(0).localGet(1).i32Store16(8);
    c.localGet(0).localGet(1).i32Store8(10, 0);
    c.localGet(0).i32Load(4, 0).localGet(0).i32Load16U(8).i32Add().localGet(0).i32Load8U(10).i32Add();
    mod.addFunction(c, 'mix');
    const memory = sharedMemory();
    const e = instantiate<{ mix(a: number, v: number): number }>(mod, memory);
    const bytes = new Uint8Array(memory.buffer);
    expect(e.mix(100, 0x11223344) >>> 0).toBe((0x11223344 + 0x3344 + 0x44) >>> 0);
    expect([...bytes.subarray(104, 111)]).toEqual([0x44, 0x33, 0x22, 0x11, 0x44, 0x33, 0x44]);
    // The last bytes of the (1-page) memory are reachable; one past them traps.
    expect(e.mix(65536 - 11, 1)).toBe(3);
    expect(() => e.mix(65536 - 10, 1)).toThrow(WebAssembly.RuntimeError);
  });

  it('computes i32 arithmetic, comparisons and bit operations as unsigned 32-bit values', () => {
    type Op = (c: CodeBuilder) => CodeBuilder;
    const ops: [string, Op, (a: number, b: number) => number][] = [
      ['add', (c) => c.i32Add(), (a, b) => a + b],
      ['sub', (c) => c.i32Sub(), (a, b) => a - b],
      ['mul', (c) => c.i32Mul(), (a, b) => Math.imul(a, b)],
      ['div_u', (c) => c.i32DivU(), (a, b) => Math.floor(a / b)],
      ['rem_u', (c) => c.i32RemU(), (a, b) => a % b],
      ['and', (c) => c.i32And(), (a, b) => a & b],
      ['or', (c) => c.i32Or(), (a, b) => a | b],
      ['xor', (c) => c.i32Xor(), (a, b) => a ^ b],
      ['shl', (c) => c.i32Shl(), (a, b) => a << (b & 31)],
      ['shr_u', (c) => c.i32ShrU(), (a, b) => a >>> (b & 31)],
      ['rotl', (c) => c.i32Rotl(), (a, b) => (a << (b & 31)) | (a >>> ((32 - (b & 31)) & 31))],
      ['rotr', (c) => c.i32Rotr(), (a, b) => (a >>> (b & 31)) | (a << ((32 - (b & 31)) & 31))],
      ['eq', (c) => c.i32Eq(), (a, b) => Number(a === b)],
      ['ne', (c) => c.i32Ne(), (a, b) => Number(a !== b)],
      ['lt_u', (c) => c.i32LtU(), (a, b) => Number(a < b)],
      ['gt_u', (c) => c.i32GtU(), (a, b) => Number(a > b)],
      ['le_u', (c) => c.i32LeU(), (a, b) => Number(a <= b)],
      ['ge_u', (c) => c.i32GeU(), (a, b) => Number(a >= b)],
      ['eqz', (c) => c.drop().i32Eqz(), (a) => Number(a === 0)],
    ];
    const mod = new ModuleBuilder();
    for (const [name, op] of ops) mod.addFunction(op(new CodeBuilder(['i32', 'i32'], ['i32']).localGet(0).localGet(1)), name);
    const e = instantiate<Record<string, (a: number, b: number) => number>>(mod);
    const u32 = fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.constantFrom(0, 1, 31, 32, 33, 0x7fffffff, 0x80000000, 0xffffffff));
    fc.assert(fc.property(u32, u32, (a, b) => {
      for (const [name, , model] of ops) {
        if ((name === 'div_u' || name === 'rem_u') && b === 0) {
          expect(() => e[name](a, b)).toThrow(WebAssembly.RuntimeError);
          continue;
        }
        expect(e[name](a, b) >>> 0, `${name}(${a}, ${b})`).toBe(model(a, b) >>> 0);
      }
    }), { numRuns: 1000 });
  });

  it('widens u32 to i64 and back: the high word of a 32x32 product', () => {
    const mod = new ModuleBuilder();
    const c = new CodeBuilder(['i32', 'i32'], ['i32']);
    c.localGet(0).i64ExtendI32U().localGet(1).i64ExtendI32U().i64Mul().i64Const(32n).i64ShrU().i32WrapI64();
    mod.addFunction(c, 'mulhi');
    const d = new CodeBuilder(['i32', 'i32'], ['i64']);
    d.localGet(0).i64ExtendI32U().localGet(1).i64ExtendI32U().i64Add();
    mod.addFunction(d, 'add64');
    const e = instantiate<{ mulhi(a: number, b: number): number; add64(a: number, b: number): bigint }>(mod);
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 0xffffffff }), (a, b) => {
      expect(e.mulhi(a, b) >>> 0).toBe(Number((BigInt(a) * BigInt(b)) >> 32n));
      expect(e.add64(a, b)).toBe(BigInt(a) + BigInt(b));
    }), { numRuns: 500 });
  });

  it('branches: block/br_if, loop, if/else with a result, br_table, select, return', () => {
    const mod = new ModuleBuilder({ memory: SHARED_LIMITS });
    // sum(addr, n): the sum of n bytes from addr, with a loop and an early exit.
    const sum = new CodeBuilder(['i32', 'i32'], ['i32']);
    const acc = sum.addLocal('i32');
    sum.block().localGet(1).i32Eqz().brIf(0).loop();
    sum.localGet(acc).localGet(0).i32Load8U().i32Add().localSet(acc);
    sum.localGet(0).i32Const(1).i32Add().localSet(0);
    sum.localGet(1).i32Const(1).i32Sub().localTee(1).brIf(0);
    sum.end().end().localGet(acc);
    mod.addFunction(sum, 'sum');
    // pick(i): br_table over three cases and a default.
    const pick = new CodeBuilder(['i32'], ['i32']);
    pick.block().block().block().block().localGet(0).brTable([0, 1, 2], 3).end();
    pick.i32Const(10).return().end().i32Const(20).return().end().i32Const(30).return().end().i32Const(99);
    mod.addFunction(pick, 'pick');
    // max(a, b) with if/else producing a value; min(a, b) with select.
    const max = new CodeBuilder(['i32', 'i32'], ['i32']);
    max.localGet(0).localGet(1).i32GtU().if('i32').localGet(0).else().localGet(1).end();
    mod.addFunction(max, 'max');
    mod.addFunction(new CodeBuilder(['i32', 'i32'], ['i32']).localGet(0).localGet(1).localGet(0).localGet(1).i32LtU().select(), 'min');
    const trap = new CodeBuilder([], ['i32']).unreachable();
    mod.addFunction(trap, 'trap');
    // twice(x) calls max(x, x) and doubles it.
    mod.addFunction(new CodeBuilder(['i32'], ['i32']).localGet(0).localGet(0).call(2).i32Const(1).i32Shl(), 'twice');
    const memory = sharedMemory();
    new Uint8Array(memory.buffer).set([1, 2, 3, 250], 64);
    const e = instantiate<Record<'sum' | 'max' | 'min', (a: number, b: number) => number> & { pick(i: number): number; trap(): number; twice(x: number): number }>(mod, memory);
    expect([e.sum(64, 4), e.sum(64, 0), e.sum(65, 2)]).toEqual([256, 0, 5]);
    expect([0, 1, 2, 3, 1000, -1].map((i) => e.pick(i))).toEqual([10, 20, 30, 99, 99, 99]);
    expect([e.max(3, 0xfffffffe) >>> 0, e.min(3, 0xfffffffe), e.max(7, 7)]).toEqual([0xfffffffe, 3, 7]);
    expect(() => e.trap()).toThrow(WebAssembly.RuntimeError);
    expect(e.twice(21)).toBe(42);
  });

  it('makes a module with no memory, no data and no exports', () => {
    const mod = new ModuleBuilder();
    mod.addFunction(new CodeBuilder([]));
    const bytes = mod.bytes();
    expect(WebAssembly.validate(bytes)).toBe(true);
    expect(WebAssembly.Module.imports(new WebAssembly.Module(bytes))).toEqual([]);
  });
});

describe('misuse is refused where it happens', () => {
  it('unbalanced blocks', () => {
    expectMisuse(() => new ModuleBuilder().addFunction(new CodeBuilder([]).block().loop().end()), /1 block\(s\) still open/);
    expectMisuse(() => new CodeBuilder([]).end(), /end with no open block/);
    expectMisuse(() => new CodeBuilder([]).block().else(), /else without an open if/);
    expectMisuse(() => new CodeBuilder([]).i32Const(1).if().else().else(), /else without an open if/);
  });

  it('branches beyond the open blocks', () => {
    expect(() => new CodeBuilder([]).br(0)).not.toThrow();
    expectMisuse(() => new CodeBuilder([]).br(1), /branch depth 1 is outside the 0 open block/);
    expectMisuse(() => new CodeBuilder([]).block().loop().i32Const(0).brIf(3), /branch depth 3/);
    expectMisuse(() => new CodeBuilder([]).block().i32Const(0).brTable([0, 1, 2], 0), /branch depth 2/);
    expectMisuse(() => new CodeBuilder([]).block().i32Const(0).brTable([0], 5), /branch depth 5/);
    expectMisuse(() => new CodeBuilder([]).br(-1), /branch depth -1/);
  });

  it('undeclared locals, bad constants, over-aligned memory access', () => {
    const c = new CodeBuilder(['i32']);
    c.addLocal('i64');
    expect(() => c.localGet(1)).not.toThrow();
    expectMisuse(() => c.localGet(2), /local 2 is not declared \(the function has 2\)/);
    expectMisuse(() => c.localSet(-1), /local -1/);
    expectMisuse(() => c.i32Const(2 ** 32), /i32.const/);
    expectMisuse(() => c.i32Const(-(2 ** 31) - 1), /i32.const/);
    expectMisuse(() => c.i64Const(2n ** 64n), /i64.const/);
    expectMisuse(() => c.i32Load8U(0, 1), /alignment 2\^1 exceeds the natural alignment 2\^0/);
    expectMisuse(() => c.i32Load(0, 3), /natural alignment 2\^2/);
    expectMisuse(() => new CodeBuilder([], ['i32', 'i32']), /at most one value/);
  });

  it('memory without an import, duplicate or dangling exports, reuse of a finished function, bad limits', () => {
    expectMisuse(() => new ModuleBuilder().addFunction(new CodeBuilder(['i32']).localGet(0).i32Load8U().drop()), /imports none/);
    const mod = new ModuleBuilder();
    const f = new CodeBuilder([]);
    mod.addFunction(f, 'f');
    expectMisuse(() => mod.addFunction(new CodeBuilder([]), 'f'), /export "f" is already defined/);
    expectMisuse(() => mod.exportFunction('g', 5), /function 5 does not exist/);
    expectMisuse(() => f.i32Const(1), /finished/);
    expectMisuse(() => new ModuleBuilder({ memory: { initial: 3, maximum: 2 } }), /memory limits/);
    expectMisuse(() => new ModuleBuilder({ memory: { initial: 1, maximum: 65537 } }), /memory limits/);
  });
});
