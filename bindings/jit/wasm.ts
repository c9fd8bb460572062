// A small WebAssembly binary emitter for netpd's code generators.
//
// The JIT turns filters into WebAssembly modules at registration time; a module is a
// handful of functions over the arena's shared memory, so all it needs is a types
// section, one imported memory, functions with locals, exports and a code section.
// Writing those few sections ourselves keeps the control plane free of a dependency
// and lets the emitter refuse misuse where it happens: a branch to a label that is not
// open, an `else` outside an `if`, a local that was never declared or a block left open
// would otherwise surface later as a bare "invalid module" from the engine, far from
// the generator line that caused it. Operand types are not tracked here: the engine's
// validator does that exactly, and generators are tested against it.
//
// Methods of CodeBuilder are named for the instructions they emit (i32Load8U is
// i32.load8_u) and return the builder, so a body reads as the instruction stream.

import { NetpdError } from '../errors.js';

export type ValType = 'i32' | 'i64';
/** The type of a block's result: nothing, or one value. */
export type BlockType = 'empty' | ValType;

const VALTYPE: Record<ValType, number> = { i32: 0x7f, i64: 0x7e };
const BLOCKTYPE: Record<BlockType, number> = { empty: 0x40, i32: 0x7f, i64: 0x7e };

const TWO32 = 2 ** 32;
const I64_MIN = -(2n ** 63n);
const U64_MAX = 2n ** 64n - 1n;

/**
 * Unsigned LEB128 of an integer: numbers 0..2^32-1 (u32, what indices, sizes and
 * offsets are) or bigints 0..2^64-1. Throws EINVAL outside that range.
 */
export function uleb128(value: number | bigint): number[] {
  const out: number[] = [];
  if (typeof value === 'bigint') {
    if (value < 0n || value > U64_MAX) throw new NetpdError('EINVAL', `unsigned LEB128 takes 0..2^64-1, got ${value}`);
    let v = value;
    do {
      const byte = Number(v & 0x7fn);
      v >>= 7n;
      out.push(v === 0n ? byte : byte | 0x80);
    } while (v !== 0n);
    return out;
  }
  if (!Number.isInteger(value) || value < 0 || value >= TWO32) throw new NetpdError('EINVAL', `unsigned LEB128 takes 0..2^32-1, got ${value}`);
  let v = value;
  do {
    const byte = v & 0x7f;
    v = Math.floor(v / 128);
    out.push(v === 0 ? byte : byte | 0x80);
  } while (v !== 0);
  return out;
}

/**
 * Signed LEB128: numbers -2^31..2^31-1 (i32) or bigints -2^63..2^63-1 (i64). Throws
 * EINVAL outside that range; callers holding a u32 or u64 bit pattern reinterpret it
 * first (CodeBuilder.i32Const and i64Const do).
 */
export function sleb128(value: number | bigint): number[] {
  const out: number[] = [];
  if (typeof value === 'bigint') {
    if (value < I64_MIN || value > -I64_MIN - 1n) throw new NetpdError('EINVAL', `signed LEB128 takes -2^63..2^63-1, got ${value}`);
    let v = value;
    for (;;) {
      const byte = Number(v & 0x7fn);
      v >>= 7n;
      if ((v === 0n && (byte & 0x40) === 0) || (v === -1n && (byte & 0x40) !== 0)) return [...out, byte];
      out.push(byte | 0x80);
    }
  }
  if (!Number.isInteger(value) || value < -(TWO32 / 2) || value >= TWO32 / 2) throw new NetpdError('EINVAL', `signed LEB128 takes -2^31..2^31-1, got ${value}`);
  let v = value;
  for (;;) {
    const byte = v & 0x7f;
    v >>= 7;
    if ((v === 0 && (byte & 0x40) === 0) || (v === -1 && (byte & 0x40) !== 0)) return [...out, byte];
    out.push(byte | 0x80);
  }
}

function utf8Name(name: string): number[] {
  const bytes = new TextEncoder().encode(name);
  return [...uleb128(bytes.length), ...bytes];
}

/** A WebAssembly vector: the count, then the items. Appends in loops: a module's code section runs to megabytes, past what spreading arrays handles well. */
function vector(items: readonly number[][]): number[] {
  const out = uleb128(items.length);
  for (const item of items) append(out, item);
  return out;
}

function append(out: number[], bytes: readonly number[]): void {
  for (let i = 0; i < bytes.length; i++) out.push(bytes[i]);
}

type Frame = 'block' | 'loop' | 'if' | 'else';

/**
 * The body of one function: its signature, its locals and its instructions. Build it,
 * then hand it to ModuleBuilder.addFunction, which finishes it.
 */
export class CodeBuilder {
  readonly params: readonly ValType[];
  readonly results: readonly ValType[];
  private readonly locals: ValType[] = [];
  private readonly code: number[] = [];
  private readonly frames: Frame[] = [];
  private finished = false;
  private touchesMemory = false;

  constructor(params: readonly ValType[], results: readonly ValType[] = []) {
    if (results.length > 1) throw new NetpdError('EINVAL', `a function returns at most one value, got ${results.length}`);
    this.params = [...params];
    this.results = [...results];
  }

  /** Declares a local of `type`; returns its index (after the parameters). */
  addLocal(type: ValType): number {
    this.locals.push(type);
    return this.params.length + this.locals.length - 1;
  }

  /** True once an instruction touches memory: the module must then import one. */
  get usesMemory(): boolean {
    return this.touchesMemory;
  }

  /** How many blocks, loops and ifs are open: a branch may name depths 0..openBlocks (the last is the function). */
  get openBlocks(): number {
    return this.frames.length;
  }

  // Constants and locals
  i32Const(value: number): this {
    if (!Number.isInteger(value) || value < -(TWO32 / 2) || value >= TWO32) throw new NetpdError('EINVAL', `i32.const takes a 32-bit integer, got ${value}`);
    return this.emit(0x41, ...sleb128(value | 0));
  }
  i64Const(value: bigint): this {
    if (value < I64_MIN || value > U64_MAX) throw new NetpdError('EINVAL', `i64.const takes a 64-bit integer, got ${value}`);
    return this.emit(0x42, ...sleb128(BigInt.asIntN(64, value)));
  }
  localGet(index: number): this { return this.emit(0x20, ...uleb128(this.local(index))); }
  localSet(index: number): this { return this.emit(0x21, ...uleb128(this.local(index))); }
  localTee(index: number): this { return this.emit(0x22, ...uleb128(this.local(index))); }

  // Control
  block(type: BlockType = 'empty'): this { return this.open('block', 0x02, type); }
  loop(type: BlockType = 'empty'): this { return this.open('loop', 0x03, type); }
  if(type: BlockType = 'empty'): this { return this.open('if', 0x04, type); }
  else(): this {
    this.live();
    if (this.frames[this.frames.length - 1] !== 'if') throw new NetpdError('EINVAL', 'else without an open if');
    this.frames[this.frames.length - 1] = 'else';
    return this.emit(0x05);
  }
  end(): this {
    this.live();
    if (this.frames.length === 0) throw new NetpdError('EINVAL', 'end with no open block (the function\'s own end is added by finish)');
    this.frames.pop();
    return this.emit(0x0b);
  }
  br(depth: number): this { return this.emit(0x0c, ...uleb128(this.label(depth))); }
  brIf(depth: number): this { return this.emit(0x0d, ...uleb128(this.label(depth))); }
  brTable(depths: readonly number[], otherwise: number): this {
    return this.emit(0x0e, ...vector(depths.map((d) => uleb128(this.label(d)))), ...uleb128(this.label(otherwise)));
  }
  return(): this { return this.emit(0x0f); }
  call(func: number): this { return this.emit(0x10, ...uleb128(func)); }
  unreachable(): this { return this.emit(0x00); }
  drop(): this { return this.emit(0x1a); }
  select(): this { return this.emit(0x1b); }

  // Memory. `align` is log2 of the alignment hint; it may not exceed the natural alignment.
  i32Load(offset = 0, align = 2): this { return this.memory(0x28, 2, offset, align); }
  i32Load8U(offset = 0, align = 0): this { return this.memory(0x2d, 0, offset, align); }
  i32Load16U(offset = 0, align = 1): this { return this.memory(0x2f, 1, offset, align); }
  i32Store(offset = 0, align = 2): this { return this.memory(0x36, 2, offset, align); }
  i32Store8(offset = 0, align = 0): this { return this.memory(0x3a, 0, offset, align); }
  i32Store16(offset = 0, align = 1): this { return this.memory(0x3b, 1, offset, align); }

  // i32 comparison and arithmetic
  i32Eqz(): this { return this.emit(0x45); }
  i32Eq(): this { return this.emit(0x46); }
  i32Ne(): this { return this.emit(0x47); }
  i32LtU(): this { return this.emit(0x49); }
  i32GtU(): this { return this.emit(0x4b); }
  i32LeU(): this { return this.emit(0x4d); }
  i32GeU(): this { return this.emit(0x4f); }
  i32Add(): this { return this.emit(0x6a); }
  i32Sub(): this { return this.emit(0x6b); }
  i32Mul(): this { return this.emit(0x6c); }
  i32DivU(): this { return this.emit(0x6e); }
  i32RemU(): this { return this.emit(0x70); }
  i32And(): this { return this.emit(0x71); }
  i32Or(): this { return this.emit(0x72); }
  i32Xor(): this { return this.emit(0x73); }
  i32Shl(): this { return this.emit(0x74); }
  i32ShrU(): this { return this.emit(0x76); }
  i32Rotl(): this { return this.emit(0x77); }
  i32Rotr(): this { return this.emit(0x78); }

  // i64: widening arithmetic on u32 values
  i64Add(): this { return this.emit(0x7c); }
  i64Mul(): this { return this.emit(0x7e); }
  i64ShrU(): this { return this.emit(0x88); }
  i32WrapI64(): this { return this.emit(0xa7); }
  i64ExtendI32U(): this { return this.emit(0xad); }

  /**
   * @internal The function's code section entry: its locals and body, with the final
   * end. Throws EINVAL while a block is still open. The builder is spent afterwards.
   */
  finish(): number[] {
    this.live();
    if (this.frames.length > 0) throw new NetpdError('EINVAL', `function ends with ${this.frames.length} block(s) still open (${this.frames.join(', ')})`);
    this.finished = true;
    const groups: number[][] = [];
    for (let i = 0; i < this.locals.length;) {
      let j = i;
      while (j < this.locals.length && this.locals[j] === this.locals[i]) j++;
      groups.push([...uleb128(j - i), VALTYPE[this.locals[i]]]);
      i = j;
    }
    const body = vector(groups);
    append(body, this.code);
    body.push(0x0b);
    const out = uleb128(body.length);
    append(out, body);
    return out;
  }

  private emit(...bytes: number[]): this {
    this.live();
    for (const b of bytes) this.code.push(b);
    return this;
  }

  private live(): void {
    if (this.finished) throw new NetpdError('EINVAL', 'the function was already finished');
  }

  private open(frame: Frame, opcode: number, type: BlockType): this {
    this.emit(opcode, BLOCKTYPE[type]);
    this.frames.push(frame);
    return this;
  }

  private label(depth: number): number {
    if (!Number.isInteger(depth) || depth < 0 || depth > this.frames.length) {
      throw new NetpdError('EINVAL', `branch depth ${depth} is outside the ${this.frames.length} open block(s) and the function`);
    }
    return depth;
  }

  private local(index: number): number {
    const count = this.params.length + this.locals.length;
    if (!Number.isInteger(index) || index < 0 || index >= count) throw new NetpdError('EINVAL', `local ${index} is not declared (the function has ${count})`);
    return index;
  }

  private memory(opcode: number, natural: number, offset: number, align: number): this {
    if (!Number.isInteger(align) || align < 0 || align > natural) throw new NetpdError('EINVAL', `alignment 2^${align} exceeds the natural alignment 2^${natural}`);
    this.touchesMemory = true;
    return this.emit(opcode, ...uleb128(align), ...uleb128(offset));
  }
}

/** Limits, in 64 KiB pages, of the shared memory a module imports. */
export interface MemoryLimits {
  initial: number;
  maximum: number;
}

/**
 * A module of functions, optionally over one imported shared memory (`env.memory`, the
 * arena's). Function types are shared between functions of the same signature. No
 * data, tables or globals: generated code keeps its constants inline.
 */
export class ModuleBuilder {
  private readonly memory: MemoryLimits | undefined;
  private readonly types: string[] = [];
  private readonly funcs: { type: number; body: number[] }[] = [];
  private readonly exportsByName = new Map<string, number>();

  constructor(options: { memory?: MemoryLimits } = {}) {
    const m = options.memory;
    if (m) {
      const page = (v: number) => Number.isInteger(v) && v >= 0 && v <= 65536;
      if (!page(m.initial) || !page(m.maximum) || m.initial > m.maximum) {
        throw new NetpdError('EINVAL', `memory limits must be pages with 0 <= initial <= maximum <= 65536, got ${m.initial}..${m.maximum}`);
      }
      this.memory = { initial: m.initial, maximum: m.maximum };
    }
  }

  /** Adds the function `code` builds (finishing it); exports it as `exportName` if given. Returns its index. */
  addFunction(code: CodeBuilder, exportName?: string): number {
    if (code.usesMemory && !this.memory) throw new NetpdError('EINVAL', 'the function uses memory but the module imports none');
    if (exportName !== undefined && this.exportsByName.has(exportName)) throw new NetpdError('EINVAL', `export "${exportName}" is already defined`);
    const signature = [...uleb128(code.params.length), ...code.params.map((t) => VALTYPE[t]), ...uleb128(code.results.length), ...code.results.map((t) => VALTYPE[t])];
    const key = signature.join(',');
    let type = this.types.indexOf(key);
    if (type < 0) type = this.types.push(key) - 1;
    const index = this.funcs.push({ type, body: code.finish() }) - 1;
    if (exportName !== undefined) this.exportFunction(exportName, index);
    return index;
  }

  /** Exports function `index` as `name`. Throws EINVAL for a duplicate name or an unknown function. */
  exportFunction(name: string, index: number): void {
    if (this.exportsByName.has(name)) throw new NetpdError('EINVAL', `export "${name}" is already defined`);
    if (!Number.isInteger(index) || index < 0 || index >= this.funcs.length) throw new NetpdError('EINVAL', `function ${index} does not exist`);
    this.exportsByName.set(name, index);
  }

  /** The module's binary form. */
  bytes(): Uint8Array<ArrayBuffer> {
    const out: number[] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
    const section = (id: number, content: number[]) => {
      out.push(id);
      append(out, uleb128(content.length));
      append(out, content);
    };
    section(1, vector(this.types.map((key) => [0x60, ...key.split(',').map(Number)])));
    if (this.memory) {
      const { initial, maximum } = this.memory;
      // limits flag 0x03: a maximum is present and the memory is shared.
      section(2, vector([[...utf8Name('env'), ...utf8Name('memory'), 0x02, 0x03, ...uleb128(initial), ...uleb128(maximum)]]));
    }
    section(3, vector(this.funcs.map((f) => uleb128(f.type))));
    section(7, vector([...this.exportsByName].map(([name, index]) => [...utf8Name(name), 0x00, ...uleb128(index)])));
    section(10, vector(this.funcs.map((f) => f.body)));
    return Uint8Array.from(out);
  }
}
