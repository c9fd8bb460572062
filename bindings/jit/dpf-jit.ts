// The DPF trie compiled to WebAssembly: DPF's dynamic code generation (Engler &
// Kaashoek, SIGCOMM 1996), over the trie the core keeps in the arena.
//
// The core's walk (dpf_match in assembly/dpf.ts) reads everything from memory: a
// node's group list, each group's field record, an explicit DFS stack. Here the walk
// is unrolled over the trie's *shape* (the trie with values erased): every shape node
// becomes straight-line code that knows its field's offset, size, mask and shift
// parameters, its depth, and its child shapes in field-id order, as constants. What
// stays in memory is exactly what changes when owners come and go under existing
// groups: edges and terminals. At each shape node the code holds the concrete node id
// in a local, reads that node's terminal word, and for each child shape inlines the
// field's bounds-checked load (a shift computes the new base instead), the edge hash
// of (node, field id, value) and a linear probe of the edge table, whose address and
// mask are constants because the table is laid out once and never grows. An edge
// found continues into the child shape's code with the child's node id; none, or a
// failed load, skips that child.
//
// Agreement with the core. The generated code visits child shapes of a node in
// field-id order and descends before trying the next sibling: the same preorder as
// the core's walk, which tries a node's groups in field-id order. A node without a
// group for some field of its shape simply has no edge for it, so the probe misses.
// A candidate is taken, as in the core, when a terminal is found at a depth strictly
// greater than the best so far; the depth is a constant of the shape node, so
// "deepest wins, ties to the first found" is one compare against the best depth.
// Loads and shifts follow the core's rules exactly: a load past the captured length
// fails its atom, a shift moving the base past it ends the branch. The base is
// tracked at generation time as a local (after a loaded shift) plus a constant, with
// the captured length already proven on the way there, so most compares on a known
// path need no bounds check of their own.
//
// Lifetime. Field ids, depths and the shape tree are baked in; node ids, edges and
// terminals are read at run time. The code is therefore right for as long as
// trie.structureVersion keeps the value it had at generation: inserting or removing
// owners under existing groups (a 5-tuple beside a thousand others) needs no new
// module. Code run after the structure changed gives wrong answers but stays safe:
// every load is checked against the captured length, probes stay inside the edge
// table (never more than half full, so a probe ends), node ids come from edges.
//
// Size. A function holds at most SHAPES_PER_FUNCTION shape nodes; when it is full,
// the rest of a node's children go to a continuation function that gets the node id,
// the base and the best so far, and returns the best (depth << 32 | owner, an i64).
// Every shape node is emitted once, so the module is linear in the shape tree, and no
// function grows past what V8 compiles quickly, however wide or deep the tree.
//
// The module imports the arena memory (env.memory) and writes nothing there but the
// results: unlike the core, whose walks keep their stacks in the trie's region, any
// number of instances may classify at once (between control-plane changes, as with
// the core).

import { DPF_NONE, dpfHash, type DpfField, type DpfShapeNode, type DpfTrie } from '../dpf/trie.js';
import { CodeBuilder, ModuleBuilder, type MemoryLimits } from './wasm.js';
import { burstLoop, checkBurstLayout, type BurstLayout } from './burst.js';

export type { BurstLayout } from './burst.js';
export type { MemoryLimits } from './wasm.js';

/** The exports of a module made by dpfModuleBytes. u32 results arrive as signed i32: apply >>> 0. */
export interface DpfModuleExports {
  /**
   * For each of the n u32 slot indices at address `slots`, writes to the u32 at
   * results + 4i the owner value of the most specific description matching that slot's
   * packet, or 0xffffffff: what dpf_classify_burst writes. Returns how many matched.
   * Slot indices must be below the arena's slot count.
   */
  classify(slots: number, n: number, results: number): number;
  /** The owner value for the packet of `capLen` captured bytes at address `pkt`, or 0xffffffff (dpf_match). */
  match(pkt: number, capLen: number): number;
}

/** Shape nodes emitted into one function before the rest goes to a continuation. */
const SHAPES_PER_FUNCTION = 256;

// The multipliers of dpf_hash (assembly/dpf.ts), for the parts the code computes at
// run time; dpfHash itself folds what is constant.
const HASH_NODE = 0x9e3779b1;
const HASH_FIELD = 0x85ebca77;
const HASH_MIX1 = 0x21f0aaad;
const HASH_MIX2 = 0x735a2d97;

/** The best candidate before any terminal is found: depth 0 (high half), owner DPF_NONE. */
const NO_MATCH = 0xffffffffn;

/**
 * The binary of a module classifying packets as `trie` does now (see DpfModuleExports).
 * It is valid while trie.structureVersion keeps its present value; owners inserted or
 * removed meanwhile under existing groups are seen without a new module. Throws EINVAL
 * for a layout that is not u32 addresses.
 */
export function dpfModuleBytes(trie: DpfTrie, layout: BurstLayout, memory: MemoryLimits): Uint8Array<ArrayBuffer> {
  checkBurstLayout(layout);
  const mod = new ModuleBuilder({ memory });
  new ShapeCompiler(trie, mod).compile();
  mod.addFunction(classifier(layout), 'classify');
  return mod.bytes();
}

/** Compiles the module of dpfModuleBytes synchronously. */
export function compileDpfModule(trie: DpfTrie, layout: BurstLayout, memory: MemoryLimits): WebAssembly.Module {
  return new WebAssembly.Module(dpfModuleBytes(trie, layout, memory));
}

/** As compileDpfModule, compiling off the main thread; the code is generated (and the structure version fixed) before this returns. */
export function compileDpfModuleAsync(trie: DpfTrie, layout: BurstLayout, memory: MemoryLimits): Promise<WebAssembly.Module> {
  return WebAssembly.compile(dpfModuleBytes(trie, layout, memory));
}

/** Instantiates a compiled module over the arena's memory. */
export function instantiateDpfModule(module: WebAssembly.Module, memory: WebAssembly.Memory): DpfModuleExports {
  return new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as DpfModuleExports;
}

// Parameters: match is (pkt, capLen) -> u32; a continuation is
// (pkt, capLen, node, base, best) -> best.
const PKT = 0, CAPLEN = 1, NODE = 2, BASE = 3, BEST = 4;
const MATCH = 0;

/** A value the generated code has in a local, or knows as a constant. */
type Operand = { local: number } | { constant: number };

/** Where the generated code stands: at a concrete node of `shape`. */
interface Place {
  shape: DpfShapeNode;
  /** Atoms from the root to this shape node, a constant of the shape. */
  depth: number;
  node: Operand;
  /** The header base is `local` (or 0 when null) plus `add`. */
  base: { local: number | null; add: number };
  /** capLen - base >= room holds on every path to here. */
  room: number;
}

/** The rest of a place's children, from `from` on, left for a continuation function. */
interface Continuation {
  place: Place;
  from: number;
}

function push(c: CodeBuilder, v: Operand): CodeBuilder {
  return 'local' in v ? c.localGet(v.local) : c.i32Const(v.constant);
}

class ShapeCompiler {
  private readonly trie: DpfTrie;
  private readonly mod: ModuleBuilder;
  private readonly fields = new Map<number, DpfField>();
  /** Address of the record pool (node n's terminal word at pool + 16n). */
  readonly pool: number;
  /** Address of the edge table. */
  readonly edges: number;
  /** The edge mask as a byte offset: slot offsets are kept pre-multiplied by 16. */
  readonly slotMask: number;
  /** Continuations in function-index order: continuation i is function 1 + i. */
  private readonly continuations: Continuation[] = [];

  constructor(trie: DpfTrie, mod: ModuleBuilder) {
    this.trie = trie;
    this.mod = mod;
    const t = trie.tables;
    this.pool = t.pool;
    this.edges = t.edgeTable;
    this.slotMask = (t.edgeMask << 4) >>> 0;
  }

  /**
   * Adds match (function 0), then every continuation it needs in the order they were
   * asked for, which is their function-index order (1..): a continuation's code may
   * ask for more, appended behind it.
   */
  compile(): void {
    const root: Place = { shape: this.trie.shapeTree(), depth: 0, node: { constant: 0 }, base: { local: null, add: 0 }, room: 0 };
    const c = new CodeBuilder(['i32', 'i32'], ['i32']);
    const f = new FunctionEmitter(this, c, c.addLocal('i64'));
    c.i64Const(NO_MATCH).localSet(f.best);
    // The root has no terminal: a description holds at least one atom.
    f.children(root, 0);
    c.localGet(f.best).i32WrapI64();
    this.mod.addFunction(c, 'match');
    for (let i = 0; i < this.continuations.length; i++) {
      const { place, from } = this.continuations[i];
      const k = new CodeBuilder(['i32', 'i32', 'i32', 'i32', 'i64'], ['i64']);
      const resumed: Place = { ...place, node: { local: NODE }, base: { local: place.base.local === null ? null : BASE, add: place.base.add } };
      new FunctionEmitter(this, k, BEST).children(resumed, from);
      k.localGet(BEST);
      this.mod.addFunction(k);
    }
  }

  field(id: number): DpfField {
    let f = this.fields.get(id);
    if (!f) this.fields.set(id, (f = this.trie.field(id)));
    return f;
  }

  /** The function index that will run `place`'s children from `from` on (continuation i is function 1 + i). */
  continuation(place: Place, from: number): number {
    return this.continuations.push({ place, from });
  }
}

/** Emits the code of shape nodes into one function. */
class FunctionEmitter {
  readonly best: number;
  private readonly compiler: ShapeCompiler;
  private readonly c: CodeBuilder;
  private readonly value: number;
  private readonly slot: number;
  private readonly parent: number;
  private readonly term: number;
  private wide = -1;
  /** The node-id and loaded-base locals of each depth, made when first needed; siblings share them. */
  private readonly nodeLocals: number[] = [];
  private readonly baseLocals: number[] = [];
  private emitted = 0;

  constructor(compiler: ShapeCompiler, c: CodeBuilder, best: number) {
    this.compiler = compiler;
    this.c = c;
    this.best = best;
    this.value = c.addLocal('i32');
    this.slot = c.addLocal('i32');
    this.parent = c.addLocal('i32');
    this.term = c.addLocal('i32');
  }

  /** The code trying `place`'s child shapes from index `from` on, in field-id order. */
  children(place: Place, from: number): void {
    const kids = place.shape.children;
    for (let k = from; k < kids.length; k++) {
      if (this.emitted === SHAPES_PER_FUNCTION) {
        this.callContinuation(place, k);
        return;
      }
      this.emitted++;
      this.child(place, kids[k]);
    }
  }

  private callContinuation(place: Place, from: number): void {
    const c = this.c;
    const index = this.compiler.continuation(place, from);
    c.localGet(PKT).localGet(CAPLEN);
    push(c, place.node);
    if (place.base.local === null) c.i32Const(0);
    else c.localGet(place.base.local);
    c.localGet(this.best).call(index).localSet(this.best);
  }

  /** One child shape: load or shift, probe, terminal, and its own children; a miss skips it. */
  private child(place: Place, shape: DpfShapeNode): void {
    const c = this.c;
    const field = this.compiler.field(shape.fieldId);
    c.block();
    const skip = c.openBlocks;
    const out = (): number => c.openBlocks - skip;
    let base = place.base;
    let room = place.room;
    let value: Operand = { constant: 0 };
    if (field.size > 0) {
      room = this.check(place, field.offset + field.size, out);
      this.load(base, field);
      if (field.kind === 'compare') {
        c.localSet(this.value);
        value = { local: this.value };
      } else {
        base = this.shiftBy(place, field, out);
        room = 0;
      }
    } else if (field.kind === 'shift') {
      room = this.check(place, field.add, out) - field.add;
      base = { local: base.local, add: base.add + field.add };
    }
    this.probe(place.node, shape.fieldId, value, out);
    const node = { local: this.depthLocal(this.nodeLocals, place.depth + 1) };
    c.localSet(node.local);
    const here: Place = { shape, depth: place.depth + 1, node, base, room };
    this.terminal(here);
    this.children(here, 0);
    c.end();
  }

  /**
   * Leaves the child's block unless capLen - base >= need (the core's `base + offset +
   * size > capLen` fails the atom); returns what is proven afterwards. base <= capLen
   * holds everywhere, so the subtraction cannot wrap.
   */
  private check(place: Place, need: number, out: () => number): number {
    if (place.room >= need) return place.room;
    const c = this.c;
    const { local, add } = place.base;
    c.localGet(CAPLEN);
    if (local !== null) c.localGet(local).i32Sub();
    c.i32Const(add + need).i32LtU().brIf(out());
    return need;
  }

  /** Pushes the masked big-endian field at base + offset (already bounds-checked). */
  private load(base: Place['base'], field: DpfField): void {
    const c = this.c;
    c.localGet(PKT);
    if (base.local !== null) c.localGet(base.local).i32Add();
    const at = base.add + field.offset;
    const full = field.size === 4 ? 0xffffffff : 2 ** (field.size * 8) - 1;
    if (field.size === 1) {
      c.i32Load8U(at);
    } else if (field.size === 2) {
      // Swap the two bytes; the mask (within 0xffff) drops what the shift left above them.
      c.i32Load16U(at, 0).localTee(this.slot).i32Const(8).i32Shl().localGet(this.slot).i32Const(8).i32ShrU().i32Or();
      if (field.mask === full) c.i32Const(0xffff).i32And();
    } else {
      // Network order: rotate each byte pair into place.
      c.i32Load(at, 0).localTee(this.slot).i32Const(8).i32Rotl().i32Const(0x00ff00ff).i32And();
      c.localGet(this.slot).i32Const(8).i32Rotr().i32Const(0xff00ff00).i32And().i32Or();
    }
    if (field.mask !== full) c.i32Const(field.mask).i32And();
  }

  /**
   * With the shift's masked length field on the stack: computes the new base (into the
   * base local of the child's depth) or leaves the child's block when it would pass
   * capLen. The product fits 32
   * bits unless a 4-byte field is scaled; then it is formed in 64 bits and refused when
   * its high half is set (capLen is a u32).
   */
  private shiftBy(place: Place, field: Extract<DpfField, { kind: 'shift' }>, out: () => number): Place['base'] {
    const c = this.c;
    const { local, add } = place.base;
    if (field.mask * field.scale + field.add > 0xffffffff) {
      if (this.wide < 0) this.wide = c.addLocal('i64');
      c.i64ExtendI32U().i64Const(BigInt(field.scale)).i64Mul().i64Const(BigInt(field.add)).i64Add().localSet(this.wide);
      c.localGet(this.wide).i64Const(32n).i64ShrU().i32WrapI64().brIf(out());
      c.localGet(this.wide).i32WrapI64();
    } else {
      if (field.scale !== 1) c.i32Const(field.scale).i32Mul();
      if (field.add !== 0) c.i32Const(field.add).i32Add();
    }
    // delta > capLen - base: the shift ends the branch.
    c.localTee(this.value).localGet(CAPLEN);
    if (local !== null) c.localGet(local).i32Sub();
    if (add !== 0) c.i32Const(add).i32Sub();
    c.i32GtU().brIf(out());
    const moved = this.depthLocal(this.baseLocals, place.depth + 1);
    c.localGet(this.value);
    if (local !== null) c.localGet(local).i32Add();
    c.localSet(moved);
    return { local: moved, add };
  }

  /**
   * Looks up edge (node, fieldId, value) with dpf_hash and linear probing; leaves the
   * child's node id on the stack, or leaves the child's block when there is no edge.
   */
  private probe(node: Operand, fieldId: number, value: Operand, out: () => number): void {
    const c = this.c;
    const E = this.compiler.edges;
    const slotMask = this.compiler.slotMask;
    if ('constant' in node && 'constant' in value) {
      c.i32Const((dpfHash(node.constant, fieldId, value.constant) << 4) & slotMask);
    } else {
      // Constants fold into one; the value's part is formed before the node id, which
      // arrives last (from the previous probe), so the node waits on one multiply and xor.
      let k = Math.imul(fieldId, HASH_FIELD);
      if ('constant' in node) k ^= Math.imul(node.constant, HASH_NODE);
      if ('constant' in value) k ^= value.constant;
      const terms: (() => void)[] = [];
      if (k !== 0) terms.push(() => c.i32Const(k));
      if ('local' in value) terms.push(() => c.localGet(value.local));
      if ('local' in node) terms.push(() => c.localGet(node.local).i32Const(HASH_NODE).i32Mul());
      terms.forEach((term, i) => {
        term();
        if (i > 0) c.i32Xor();
      });
      const x = this.slot;
      c.localTee(x).localGet(x).i32Const(16).i32ShrU().i32Xor().i32Const(HASH_MIX1).i32Mul();
      c.localTee(x).localGet(x).i32Const(15).i32ShrU().i32Xor().i32Const(HASH_MIX2).i32Mul();
      c.localTee(x).localGet(x).i32Const(15).i32ShrU().i32Xor();
      c.i32Const(4).i32Shl().i32Const(slotMask).i32And();
    }
    c.localSet(this.slot);
    // Slot offsets are kept pre-multiplied by 16; the table's address is the loads' offset.
    c.loop();
    c.localGet(this.slot).i32Load(E).localTee(this.parent);
    if ('local' in node || node.constant !== 0) push(c, node).i32Ne();
    c.localGet(this.slot).i32Load(E + 4).i32Const(fieldId).i32Ne().i32Or();
    c.localGet(this.slot).i32Load(E + 8);
    if ('local' in value || value.constant !== 0) push(c, value).i32Ne();
    c.i32Or().if();
    c.localGet(this.parent).i32Const(DPF_NONE).i32Eq().brIf(out());
    c.localGet(this.slot).i32Const(16).i32Add().i32Const(slotMask).i32And().localSet(this.slot);
    c.br(1);
    c.end().end();
    c.localGet(this.slot).i32Load(E + 12);
  }

  /** Takes the node's terminal when there is one and it is deeper than the best so far. */
  private terminal(place: Place): void {
    const c = this.c;
    push(c, place.node).i32Const(4).i32Shl().i32Load(this.compiler.pool).localTee(this.term).i32Const(DPF_NONE).i32Ne();
    c.localGet(this.best).i64Const(32n).i64ShrU().i32WrapI64().i32Const(place.depth).i32LtU().i32And().if();
    c.localGet(this.term).i64ExtendI32U().i64Const(BigInt(place.depth) << 32n).i64Add().localSet(this.best);
    c.end();
  }

  private depthLocal(locals: number[], depth: number): number {
    locals[depth] ??= this.c.addLocal('i32');
    return locals[depth];
  }
}

/** classify: match over each slot of a burst, counting the matches. */
function classifier(L: BurstLayout): CodeBuilder {
  return burstLoop(L, {
    wireLen: false,
    packet: (c, { pkt, buflen }) => { c.localGet(pkt).localGet(buflen).call(MATCH); },
    matched: (c, owner) => { c.localGet(owner).i32Const(DPF_NONE).i32Ne(); },
  });
}
