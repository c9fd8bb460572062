// The DPF merged trie over an arena (assembly/dpf.ts holds the design and every layout).
//
// DpfTrie reserves the trie's region in the arena's control region, encodes canonical
// descriptions into the trie's staging area and calls the core to merge or remove them;
// classification is one core call per burst. Everything the later JIT needs to generate
// code against the same tables — their addresses, the record layouts' offsets, the
// field table, the shape tree and the hash — is exposed here, read from the core.

import { NetpdError } from '../errors.js';
import type { Arena } from '../arena.js';
import { probeCore } from '../core.js';
import { DPF_MAX_ATOMS, formatDescription, type CanonicalAtom } from './description.js';

/** The owner value meaning "no owner": a classification result, never an owner. */
export const DPF_NONE = 0xffffffff;

const DPF_OK = 0;
const DPF_DUPLICATE = 1;
const DPF_FULL = 2;

/** Words of one encoded atom (see Atom in assembly/dpf.ts). */
export const ATOM_WORDS = 4;
const KIND_SHIFT = 1;

/** The core's dpf_layout_table, in order: header field offsets, then record size and max atoms. */
const DPF_LAYOUT = [
  'version', 'owners', 'nodes', 'groups', 'edges', 'fields', 'shapes', 'pool', 'poolCap',
  'edgeTable', 'edgeMask', 'edgeCap', 'fieldTable', 'fieldCap', 'fieldTop', 'shapeTable', 'shapeCap',
  'shapeTop', 'staging', 'recordSize', 'maxAtoms',
] as const;
type DpfLayout = Record<(typeof DPF_LAYOUT)[number], number>;

export interface DpfTrieOptions {
  /** Records for nodes and for the second and later groups of a node (the root counts). */
  maxNodes: number;
  /** Most edges (a tree has nodes - 1). Default maxNodes. The edge table has 2x slots, rounded up to a power of two. */
  maxEdges?: number;
  /** Most distinct fields (compare fields and shift specs). Default 4096. */
  maxFields?: number;
}

export interface DpfTrieStats {
  /** Descriptions with a terminal. */
  owners: number;
  /** Node records in use, the root included. */
  nodes: number;
  /** Extra-group records in use (a node's second and later groups). */
  groups: number;
  edges: number;
  fields: number;
  /** Shape nodes, the root's included. */
  shapes: number;
  /** Changes exactly when the trie's shape changes (see assembly/dpf.ts). */
  structureVersion: number;
}

/** Addresses and sizes of the trie's tables in arena memory, for generated code. */
export interface DpfTables {
  /** The trie header; the address dpf_* core functions take. */
  trie: number;
  /** Record pool: node id n's record is at pool + 16n; the root is node 0. */
  pool: number;
  poolCap: number;
  /** Edge table: slot i at edgeTable + 16i; slots = edgeMask + 1. */
  edgeTable: number;
  edgeMask: number;
  /** Field records: field id f at fieldTable + 16f. */
  fieldTable: number;
  /** Shape records: shape id s at shapeTable + 16s. */
  shapeTable: number;
  /** Staging area: DPF_MAX_ATOMS encoded atoms. */
  staging: number;
}

/** A field of the field table: an atom's field, without the value. */
export type DpfField =
  | { kind: 'compare'; offset: number; size: 1 | 2 | 4; mask: number }
  | { kind: 'shift'; offset: number; size: 0 | 1 | 2 | 4; mask: number; scale: number; add: number };

/** A shape node: the nodes reached by one sequence of field ids (see assembly/dpf.ts). */
export interface DpfShapeNode {
  id: number;
  /** Field id of the edge from the parent shape; -1 for the root. */
  fieldId: number;
  /** Concrete trie nodes of this shape. */
  nodes: number;
  /** Child shapes, in field-id order (the order classification tries groups). */
  children: DpfShapeNode[];
}

/**
 * The hash of the trie's tables, as assembly/dpf.ts defines it (all arithmetic mod 2^32).
 * The edge slot of (parent, field, value) is dpfHash(parent, field, value) & edgeMask.
 */
export function dpfHash(a: number, b: number, c: number): number {
  let x = (c ^ Math.imul(a, 0x9e3779b1) ^ Math.imul(b, 0x85ebca77)) >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x21f0aaad) >>> 0;
  x ^= x >>> 15;
  x = Math.imul(x, 0x735a2d97) >>> 0;
  x ^= x >>> 15;
  return x >>> 0;
}

const inRange = (v: number, hi: number): boolean => Number.isInteger(v) && v >= 0 && v <= hi;

/**
 * Writes `atom` as ATOM_WORDS words at words[at..]. Returns false, writing nothing, when
 * a field would not fit its bits (offset and add 16, size and scale as canonical); the
 * core checks the rest (mask, value) itself.
 */
export function encodeAtom(atom: CanonicalAtom, words: Uint32Array, at: number): boolean {
  if (!inRange(atom.offset, 0xffff) || !inRange(atom.size, 4)) return false;
  if (atom.kind === 'compare') {
    words[at] = atom.offset | (atom.size << 16);
    words[at + 1] = atom.mask;
    words[at + 2] = 0;
    words[at + 3] = atom.value;
  } else if (atom.kind === 'shift' && inRange(atom.scale, 256) && inRange(atom.add, 0xffff)) {
    words[at] = (atom.offset | (atom.size << 16) | (KIND_SHIFT << 24)) >>> 0;
    words[at + 1] = atom.mask;
    words[at + 2] = ((atom.scale << 16) | atom.add) >>> 0;
    words[at + 3] = 0;
  } else {
    return false;
  }
  return true;
}

let layoutCache: DpfLayout | undefined;

// Reads the core's DPF layout table, written to `scratch` (at least 128 bytes of arena
// memory that are about to be initialized anyway).
function dpfLayout(arena: Arena, scratch: number): DpfLayout {
  if (layoutCache) return layoutCache;
  const n = arena.core.dpf_layout_table(scratch);
  if (n !== DPF_LAYOUT.length) throw new NetpdError('ENOTSUP', `core DPF layout table has ${n} entries, bindings expect ${DPF_LAYOUT.length}: rebuild`);
  const table = arena.words.subarray(scratch >>> 2, (scratch >>> 2) + n);
  layoutCache = Object.fromEntries(DPF_LAYOUT.map((name, i) => [name, table[i]])) as DpfLayout;
  return layoutCache;
}

function capacity(v: unknown, name: string, fallback: number, min: number): number {
  const n = v ?? fallback;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > 1 << 26) {
    throw new NetpdError('EINVAL', `${name} must be an integer in ${min}..${1 << 26}, got ${String(n)}`);
  }
  return n;
}

export class DpfTrie {
  readonly arena: Arena;
  /** Address of the trie header in arena memory. */
  readonly address: number;
  private readonly L: DpfLayout;
  private readonly staging: Uint32Array;
  private readonly words: Uint32Array;

  private constructor(arena: Arena, address: number, layout: DpfLayout) {
    this.arena = arena;
    this.address = address;
    this.L = layout;
    this.words = arena.words;
    this.staging = new Uint32Array(arena.memory.buffer, this.word('staging'), DPF_MAX_ATOMS * ATOM_WORDS);
  }

  /**
   * Lays out an empty trie in the arena's control region. Throws EINVAL for capacities
   * out of range, EFULL when the control region cannot hold the trie (see bytes()).
   */
  static create(arena: Arena, options: DpfTrieOptions): DpfTrie {
    const maxNodes = capacity(options.maxNodes, 'maxNodes', 0, 1);
    const maxEdges = capacity(options.maxEdges, 'maxEdges', maxNodes, 0);
    const maxFields = capacity(options.maxFields, 'maxFields', 4096, 0);
    const bytes = DpfTrie.bytes({ maxNodes, maxEdges, maxFields });
    const at = arena.reserve(bytes, 64);
    const layout = dpfLayout(arena, at);
    if (!arena.core.dpf_init(at, maxNodes, maxEdges, maxFields)) {
      throw new NetpdError('EINVAL', 'the core refused the DPF trie layout');
    }
    return new DpfTrie(arena, at, layout);
  }

  /** Bytes of control region a trie with these capacities takes. */
  static bytes(options: DpfTrieOptions): number {
    const maxNodes = capacity(options.maxNodes, 'maxNodes', 0, 1);
    const bytes = probeCore().exports.dpf_bytes(maxNodes, capacity(options.maxEdges, 'maxEdges', maxNodes, 0), capacity(options.maxFields, 'maxFields', 4096, 0)) >>> 0;
    if (bytes === 0) throw new NetpdError('EINVAL', `a DPF trie of ${maxNodes} nodes does not fit in 4 GiB`);
    return bytes;
  }

  /**
   * Merges a canonical description (canonicalDescription) with terminal `owner`, a u32
   * other than 0xffffffff. Throws EDUPDESC when an equal description is registered,
   * EFULL when a table would overflow (nothing is changed then), EBADDESC for atoms not
   * in canonical form, EINVAL for a bad owner.
   */
  insert(atoms: readonly CanonicalAtom[], owner: number): void {
    if (!Number.isInteger(owner) || owner < 0 || owner >= DPF_NONE) {
      throw new NetpdError('EINVAL', `a DPF owner value must be an integer in 0..0xfffffffe, got ${owner}`);
    }
    const n = this.stage(atoms);
    const status = this.arena.core.dpf_insert(this.address, this.staging.byteOffset, n, owner) >>> 0;
    if (status === DPF_OK) return;
    if (status === DPF_DUPLICATE) {
      throw new NetpdError('EDUPDESC', `an equal description is already registered: ${formatDescription(atoms)}`);
    }
    if (status === DPF_FULL) {
      const s = this.stats;
      throw new NetpdError('EFULL', `the DPF trie cannot hold ${formatDescription(atoms)}: ` +
        `${s.nodes + s.groups} of ${this.word('poolCap')} records, ${s.edges} of ${this.word('edgeCap')} edges, ` +
        `${s.fields} of ${this.word('fieldCap')} fields, ${s.shapes} of ${this.word('shapeCap')} shape nodes in use`);
    }
    throw new NetpdError('EBADDESC', `not a canonical DPF description: ${formatDescription(atoms)}`);
  }

  /** Removes the description's terminal and prunes what it alone used. Returns false if it was not registered. */
  remove(atoms: readonly CanonicalAtom[]): boolean {
    const n = this.stage(atoms);
    return (this.arena.core.dpf_remove(this.address, this.staging.byteOffset, n) >>> 0) !== DPF_NONE;
  }

  /**
   * Classifies slots vec[0..n) (an arena burst vector): results[i] gets the owner of
   * the most specific description matching slot vec[i]'s packet, or DPF_NONE. `results`
   * must live in the arena too (arena.burstVector). Returns how many matched.
   */
  classifyBurst(slotsVec: Uint32Array, n: number, results: Uint32Array): number {
    const slots = this.arena.addressOf(slotsVec, n);
    const out = this.arena.addressOf(results, n);
    return this.arena.core.dpf_classify_burst(this.address, this.arena.base, slots, n, out);
  }

  /** The owner of one slot's packet, or DPF_NONE. */
  classify(slot: number): number {
    return this.arena.core.dpf_match(this.address, this.arena.dataOffset(slot), this.arena.capLen(slot)) >>> 0;
  }

  get stats(): DpfTrieStats {
    return {
      owners: this.word('owners'),
      nodes: this.word('nodes'),
      groups: this.word('groups'),
      edges: this.word('edges'),
      fields: this.word('fields'),
      shapes: this.word('shapes'),
      structureVersion: this.word('version'),
    };
  }

  get structureVersion(): number {
    return this.word('version');
  }

  /** Addresses of the tables, fixed for the trie's life (the arena never grows). */
  get tables(): DpfTables {
    return {
      trie: this.address,
      pool: this.word('pool'),
      poolCap: this.word('poolCap'),
      edgeTable: this.word('edgeTable'),
      edgeMask: this.word('edgeMask'),
      fieldTable: this.word('fieldTable'),
      shapeTable: this.word('shapeTable'),
      staging: this.word('staging'),
    };
  }

  /** The field id of an atom's field, or -1 when no group tests that field. */
  fieldId(atom: CanonicalAtom): number {
    if (!encodeAtom(atom, this.staging, 0)) return -1;
    const id = this.arena.core.dpf_field_find(this.address, this.staging.byteOffset) >>> 0;
    return id === DPF_NONE ? -1 : id;
  }

  /** The field with id `id` (as fieldId or the shape tree name it). */
  field(id: number): DpfField {
    if (!Number.isInteger(id) || id < 0 || id >= this.word('fieldTop')) throw new NetpdError('EINVAL', `no DPF field has id ${id}`);
    const r = (this.word('fieldTable') >>> 2) + id * 4;
    const spec = this.words[r];
    const offset = spec & 0xffff;
    const size = (spec >>> 16) & 0xff;
    const mask = this.words[r + 1];
    if (spec >>> 24 === KIND_SHIFT) {
      const param = this.words[r + 2];
      return { kind: 'shift', offset, size: size as 0 | 1 | 2 | 4, mask, scale: param >>> 16, add: param & 0xffff };
    }
    return { kind: 'compare', offset, size: size as 1 | 2 | 4, mask };
  }

  /** The shape tree (values erased), read from the shape table: what the JIT generates code for. */
  shapeTree(): DpfShapeNode {
    const base = this.word('shapeTable') >>> 2;
    const top = this.word('shapeTop');
    const byId = new Map<number, DpfShapeNode>();
    const live: { parent: number; node: DpfShapeNode }[] = [];
    for (let id = 0; id < top; id++) {
      const r = base + id * 4;
      const refs = this.words[r + 3];
      if (refs === 0) continue;
      const node: DpfShapeNode = { id, fieldId: id === 0 ? -1 : this.words[r + 1], nodes: refs, children: [] };
      byId.set(id, node);
      live.push({ parent: this.words[r], node });
    }
    for (const { parent, node } of live) if (node.id !== 0) byId.get(parent)?.children.push(node);
    for (const node of byId.values()) node.children.sort((a, b) => a.fieldId - b.fieldId);
    const root = byId.get(0);
    if (!root) throw new NetpdError('EINVAL', 'the DPF trie has no root shape');
    return root;
  }

  private word(name: keyof DpfLayout): number {
    return this.words[(this.address + this.L[name]) >>> 2];
  }

  private stage(atoms: readonly CanonicalAtom[]): number {
    const n = atoms.length;
    if (n < 1 || n > DPF_MAX_ATOMS) throw new NetpdError('EBADDESC', `a DPF description holds 1..${DPF_MAX_ATOMS} atoms, got ${n}`);
    for (let i = 0; i < n; i++) {
      if (!encodeAtom(atoms[i], this.staging, i * ATOM_WORDS)) {
        throw new NetpdError('EBADDESC', `atom ${i} is not in canonical form: ${JSON.stringify(atoms[i])}`, { details: { atom: i } });
      }
    }
    return n;
  }
}
