// DPF: the merged trie of packet descriptions (Engler & Kaashoek, "DPF: Fast, Flexible
// Message Demultiplexing using Dynamic Code Generation", SIGCOMM 1996), in raw memory.
//
// A description is a conjunction of atoms in canonical form (bindings/dpf/description.ts):
// a compare tests (load(base + offset, size) & mask) == value, a shift moves the header
// base by (load(base + offset, size) & mask) * scale + add (size 0: no load). Loads are
// big-endian; a load that reaches past the captured length fails its atom.
//
// The trie. Inserting a description walks from the root node, one edge per atom, and
// adds the nodes that are missing; the last node gets a terminal holding the owner value
// (a u32 the caller chooses, not 0xffffffff: the dispatcher passes its PID-table entry
// index). A node's outgoing edges are organized in *field groups*: a group is one field
// (a compare's offset/size/mask, or a whole shift spec) with the values owners test it
// for, each value leading to its own child. Fields are interned in a field table, so a
// field is a small integer (field id), and a node keeps its groups sorted by field id.
// Every edge of every node lives in ONE open-addressing hash table keyed by
// (parent node id, field id, value): following an edge is one hash probe, however many
// owners test that field under that node — the cost of demultiplexing stays flat as
// owners grow. A shift group has one edge, with value 0. The trie is a tree, so there
// is exactly one edge per non-root node (edges = nodes - 1).
//
// Classification: every description that matches a packet is a path from the root to
// a terminal whose atoms all hold. Within a group at most one value can match (the
// field loads one value), so a depth-first walk that, at each node, tries its groups
// in field-id order and follows the one edge each group may give visits exactly the
// matching paths. The most specific match wins: the terminal deepest in the trie (the
// longest description, counted in canonical atoms, shifts included); among equal
// depths, the first found by that walk — the description whose sequence of field ids
// is lexicographically smallest. The walk keeps an explicit stack of (node, base, depth,
// next group) frames in the trie's own memory, one frame per ancestor still holding
// untried groups, so at most DPF_MAX_ATOMS frames; a burst runs DPF_LANES walks
// interleaved (see the walk, below). A shift that would move the base
// past the captured length ends that branch: every atom below it would fail, and no
// description ends with a shift.
//
// Shape and structure version. The *shape* of the trie is the trie with values erased:
// nodes reached from the root by the same sequence of field ids are one shape node, and
// a shape node has a child per field some node of that shape has a group for. Code
// generated for a shape node (the later JIT: inline field offsets, masks and shift
// parameters, inline probes into the edge table, a load of the node's terminal word)
// is correct for every concrete node of that shape, whatever values its edges hold.
// Shape nodes are kept in a shape table, each counting the concrete nodes it stands for;
// `version` in the header changes (by one per insert or remove) exactly when a shape
// node is created or freed. Adding or removing an owner under existing groups (a new
// 5-tuple beside a thousand others) changes only data: edges, nodes and terminals, the
// hash table's contents, never the version. Terminals are data too: generated code
// reads a node's terminal word instead of knowing whether it has one.
//
// Memory. Everything is laid out once by dpf_init in a region the caller reserves in
// the arena's control region; nothing is allocated afterwards. Node records and the
// records of extra groups come from one pool of 16-byte records with a free list;
// fields and shape nodes have their own record arrays and free lists; the three hash
// tables use linear probing at a load factor of at most 1/2 and delete by backward
// shift, so they never hold tombstones and a lookup stops at the first empty slot.
// dpf_insert first works out what it needs and returns DPF_FULL with nothing changed
// when anything would run out, so an insert is all or nothing.
//
// Concurrency: dpf_insert and dpf_remove are control-plane operations, called between
// classification bursts on the same thread. dpf_match and dpf_classify_burst use the
// lane records and stacks in the trie's region: one classification at a time per trie.
//
// For generated code (the JIT). Per shape node S, reached by fields f1..fk, code is
// correct for every concrete node of S: it holds the concrete node id in a local, reads
// the node record's terminal word (+0) to note a match at depth k, and for each child
// shape of S, in field-id order, with the field's parameters as constants (field
// records below): loads the field (compare: value = load(base + offset, size) & mask;
// shift: value 0 and a new base), and probes the edge table for (node, f, value) with
// the hash below — (f * 0x85ebca77) is a constant there. A hit gives the child node id
// for the child shape's code; a miss, or a load past the captured bytes, goes on to the
// next child shape. The addresses (pool, edgeTable, edgeMask, fieldTable, shapeTable)
// are fixed for the trie's life, because the arena's memory never grows. Code must be
// regenerated when `version` changes, and only then.
//
//   Trie region (64-aligned, dpf_bytes long; offsets for DPF_LANES = 4)
//   ┌──────────────────────────────┐ t
//   │ DpfTrie header               │ 256 bytes (below)
//   ├──────────────────────────────┤ t + 256: stack
//   │ DFS stacks: lanes × 64 × 16  │ frame = node u32 | base u32 | depth u32 | g u32 (address)
//   ├──────────────────────────────┤ t + 4352: lanes
//   │ lane records: lanes × 64     │ see the walk, below
//   ├──────────────────────────────┤ t + 4608: path
//   │ path scratch (1024 bytes)    │ node ids[65] | shape ids[65] | field ids[64] (u32 each);
//   │                              │ its last word holds dpf_match's result
//   ├──────────────────────────────┤ t + 5632: staging
//   │ staging: 64 atoms × 16       │ the caller's encoded description (see Atom below)
//   ├──────────────────────────────┤ t + 6656 = pool (64-aligned from here on)
//   │ record pool: poolCap × 16    │ node records and extra-group records; poolCap = maxNodes
//   ├──────────────────────────────┤ edgeTable
//   │ edge table: edgeSlots × 16   │ edgeSlots = pow2ceil(2 × max(maxEdges, 1))
//   ├──────────────────────────────┤ fieldTable
//   │ field records: fieldCap × 16 │ fieldCap = maxFields
//   ├──────────────────────────────┤ fieldHash
//   │ field hash: u32 × fieldSlots │ field ids; fieldSlots = pow2ceil(2 × max(fieldCap, 1))
//   ├──────────────────────────────┤ shapeTable
//   │ shape records: shapeCap × 16 │ shapeCap = min(maxNodes, 65536)
//   ├──────────────────────────────┤ shapeHash
//   │ shape hash: u32 × shapeSlots │ shape ids; shapeSlots = pow2ceil(2 × shapeCap)
//   └──────────────────────────────┘
//
//   DpfTrie header (u32 words; addresses are absolute)
//   ┌───────┬─────────┬────────┬───────┬────────┬───────┬────────┬────────┐
//   │ magic │ version │ owners │ nodes │ groups │ edges │ pool   │ poolCap│ +0
//   ├───────┼─────────┼────────┼───────┼────────┼───────┼────────┼────────┤
//   │ pool- │ pool-   │ edge-  │ edge- │ edge-  │ field-│ field- │ field- │ +32
//   │ Top   │ Free    │ Table  │ Mask  │ Cap    │ Table │ Cap    │ Top    │
//   ├───────┼─────────┼────────┼───────┼────────┼───────┼────────┼────────┤
//   │ field-│ field-  │ field- │ fields│ shape- │ shape-│ shape- │ shape- │ +64
//   │ Free  │ Hash    │HashMask│       │ Table  │ Cap   │ Top    │ Free   │
//   ├───────┼─────────┼────────┼───────┼────────┼───────┼────────┼────────┤
//   │ shape-│ shape-  │ shapes │ stack │ lanes  │ path  │ staging│        │ +96
//   │ Hash  │HashMask │        │       │        │       │        │        │
//   └───────┴─────────┴────────┴───────┴────────┴───────┴────────┴────────┘
//   fieldTable..fields and shapeTable..shapes are each an InternTable (records, cap,
//   top, free, hash, hashMask, live).
//   *Top: records ever handed out (high-water mark); *Free: free-list head or 0xffffffff.

//   Atom (staging, 16 bytes, little-endian words) — also the field key of the field table
//   ┌─────────────────────────────┬──────────┬────────────────────────┬──────────┐
//   │ spec u32                    │ mask u32 │ param u32              │ value u32│
//   │ offset:16 | size:8 | kind:8 │          │ add:16 | scale:16      │          │
//   └─────────────────────────────┴──────────┴────────────────────────┴──────────┘
//   +0  (kind 0 compare, 1 shift)  +4         +8  (0 for a compare)    +12 (0 for a shift)
//
//   Node record (pool, 16 bytes; node id n at pool + n*16; the root is node 0)
//   ┌──────────────┬──────────────┬──────────────┬──────────────┐
//   │ terminal u32 │ field u32    │ count u32    │ next u32     │
//   └──────────────┴──────────────┴──────────────┴──────────────┘
//   +0 owner value, +4 field id of the node's first group (lowest field id), 0xffffffff
//   or 0xffffffff   if it has no group; +8 edges in that group; +12 record index of the
//                   second group, or 0xffffffff. A free record keeps its free-list link
//                   in `next`.
//
//   Group record (pool, 16 bytes, same words 1..3 as a node, so a group list is walked
//   from the node record itself: field at +4, count at +8, next at +12)
//   ┌──────────────┬──────────────┬──────────────┬──────────────┐
//   │ unused (~0)  │ field u32    │ count u32    │ next u32     │
//   └──────────────┴──────────────┴──────────────┴──────────────┘
//
//   A node's groups, in ascending field id (the first inline, the rest chained):
//   node n ┌──────┬─────┬───┬──────┐     ┌────┬─────┬───┬──────┐     ┌────┬─────┬───┬──────┐
//          │ term │ f=2 │ 3 │ r ───┼────►│ ~0 │ f=5 │ 1 │ s ───┼────►│ ~0 │ f=9 │ 7 │  ~0  │
//          └──────┴─────┴───┴──────┘     └────┴─────┴───┴──────┘     └────┴─────┴───┴──────┘
//
//   Edge entry (edge table, 16 bytes, a quarter of a cache line)
//   ┌──────────────┬──────────────┬──────────────┬──────────────┐
//   │ parent u32   │ field u32    │ value u32    │ child u32    │
//   └──────────────┴──────────────┴──────────────┴──────────────┘
//   parent 0xffffffff marks an empty slot. value is the masked field for a compare, 0
//   for a shift. Lookup: i = dpf_hash(parent, field, value) & edgeMask; while the slot
//   is not empty: if its key is equal, child; else i = (i + 1) & edgeMask. An empty slot
//   means no edge. The table is never more than half full, so a probe always ends.
//
//   Field record (16 bytes; field id f at fieldTable + f*16)
//   ┌──────────┬──────────┬───────────┬──────────┐
//   │ spec u32 │ mask u32 │ param u32 │ refs u32 │   words 0..2 are the atom's first three;
//   └──────────┴──────────┴───────────┴──────────┘   refs = groups using the field
//
//   Shape record (16 bytes; shape id s at shapeTable + s*16; the root's shape is 0)
//   ┌────────────┬───────────┬──────────┬──────────┐
//   │ parent u32 │ field u32 │ 0        │ refs u32 │   refs = concrete nodes of this shape
//   └────────────┴───────────┴──────────┴──────────┘
//   Both are interned records: the first three words are the key (the hash key too);
//   a free record keeps its free-list link in the refs word. The root shape's record is
//   (0xffffffff, 0xffffffff, 0, 1) and is not in the hash.
//
//   The hash (dpf_hash, also what generated code inlines), all arithmetic mod 2^32:
//     x = c ^ (a * 0x9e3779b1) ^ (b * 0x85ebca77)
//     x ^= x >>> 16; x *= 0x21f0aaad; x ^= x >>> 15; x *= 0x735a2d97; x ^= x >>> 15
//   (the 2-round "lowbias32" integer finalizer). Edges hash (parent, field, value);
//   fields hash (spec, mask, param); shapes hash (parent, field, 0).

import { ArenaHeader, SlotMeta, slot_meta } from './arena';

/** No owner, no node, no field: the empty marker everywhere in the trie. */
export const DPF_NONE: u32 = 0xffffffff;
export const DPF_MAX_ATOMS: u32 = 64;
export const DPF_MAGIC: u32 = 0x46504454; // "TDPF" little-endian

// dpf_insert results
export const DPF_OK: u32 = 0;
export const DPF_DUPLICATE: u32 = 1;
export const DPF_FULL: u32 = 2;
export const DPF_BAD: u32 = 3;

export const DPF_KIND_COMPARE: u32 = 0;
export const DPF_KIND_SHIFT: u32 = 1;

@unmanaged export class DpfTrie {
  magic: u32;
  version: u32;      // structure version: changes exactly when the shape changes
  owners: u32;       // terminals set
  nodes: u32;        // live node records
  groups: u32;       // live extra-group records (second and later groups of a node)
  edges: u32;        // live edges
  pool: u32;         // address of the record pool
  poolCap: u32;      // records in the pool (node records + group records)
  poolTop: u32;      // records ever handed out (high-water mark)
  poolFree: u32;     // free-list head, DPF_NONE when empty
  edgeTable: u32;    // address of the edge table
  edgeMask: u32;     // edge slots - 1
  edgeCap: u32;      // most live edges (maxEdges)
  fieldTable: u32;   // the field table, an InternTable: these seven words
  fieldCap: u32;
  fieldTop: u32;
  fieldFree: u32;
  fieldHash: u32;
  fieldHashMask: u32;
  fields: u32;       // live fields
  shapeTable: u32;   // the shape table, an InternTable: these seven words
  shapeCap: u32;
  shapeTop: u32;
  shapeFree: u32;
  shapeHash: u32;
  shapeHashMask: u32;
  shapes: u32;       // live shape nodes, the root's included
  stack: u32;        // address of the DFS stacks (one per lane)
  lanes: u32;        // address of the lane records
  path: u32;         // address of the insert/remove path scratch
  staging: u32;      // address of the staging area (DPF_MAX_ATOMS atoms)
}

// An interning table (fields, shape nodes): records of three key words and a reference
// count, a free list, and a hash of record ids keyed by the three words.
@unmanaged class InternTable {
  records: u32;      // address of the records (16 bytes each)
  cap: u32;
  top: u32;          // records ever handed out (high-water mark)
  free: u32;         // free-list head (linked through the refs word), DPF_NONE when empty
  hash: u32;         // address of the hash: u32 record ids, DPF_NONE when empty
  hashMask: u32;     // hash slots - 1
  live: u32;         // records in use
}

@inline function field_table(h: DpfTrie): InternTable {
  return changetype<InternTable>(changetype<usize>(h) + offsetof<DpfTrie>('fieldTable'));
}
@inline function shape_table(h: DpfTrie): InternTable {
  return changetype<InternTable>(changetype<usize>(h) + offsetof<DpfTrie>('shapeTable'));
}

@inline const HEADER: usize = 256;
/** Packets a burst classification walks at once (a power of two). */
export const DPF_LANES: u32 = 4;
@inline const STACK_BYTES: usize = <usize>DPF_LANES * 64 * 16;
@inline const LANE_BYTES: usize = <usize>DPF_LANES * 64;
@inline const PATH_BYTES: usize = 1024;
@inline const STAGING_BYTES: usize = 64 * 16;
@inline const REC: usize = 16;
@inline const SHAPE_CAP_MAX: u32 = 65536;
@inline const CAP_MAX: u32 = 1 << 26;
// Offsets of the path scratch's three arrays.
@inline const PATH_SHAPES: usize = 65 * 4;
@inline const PATH_FIELDS: usize = 130 * 4;

@inline function align64(x: u64): u64 { return (x + 63) & ~(<u64>63); }

function pow2ceil(n: u32): u32 {
  return n <= 1 ? 1 : (<u32>1) << (32 - clz<u32>(n - 1));
}

/** The hash of the edge, field and shape tables (see the top of this file). */
@inline export function dpf_hash_inline(a: u32, b: u32, c: u32): u32 {
  let x = c ^ (a * 0x9e3779b1) ^ (b * 0x85ebca77);
  x ^= x >> 16;
  x *= 0x21f0aaad;
  x ^= x >> 15;
  x *= 0x735a2d97;
  x ^= x >> 15;
  return x;
}

/** dpf_hash_inline, exported so bindings and generated code can be checked against it. */
export function dpf_hash(a: u32, b: u32, c: u32): u32 {
  return dpf_hash_inline(a, b, c);
}

// ---- sizes and initialization --------------------------------------------------------

function shape_cap(maxNodes: u32): u32 { return min(maxNodes, SHAPE_CAP_MAX); }
function edge_slots(maxEdges: u32): u32 { return pow2ceil(max(maxEdges, 1) * 2); }

// Byte offset, from the trie's base, of region `which`: 0 record pool, 1 edge table,
// 2 field records, 3 field hash, 4 shape records, 5 shape hash, 6 the end (total size).
function region_offset(maxNodes: u32, maxEdges: u32, maxFields: u32, which: u32): u64 {
  const shapes = shape_cap(maxNodes);
  let at = <u64>(HEADER + STACK_BYTES + LANE_BYTES + PATH_BYTES + STAGING_BYTES);
  if (which == 0) return at;
  at = align64(at + <u64>maxNodes * REC);
  if (which == 1) return at;
  at = align64(at + <u64>edge_slots(maxEdges) * REC);
  if (which == 2) return at;
  at = align64(at + <u64>max(maxFields, 1) * REC);
  if (which == 3) return at;
  at = align64(at + <u64>pow2ceil(max(maxFields, 1) * 2) * 4);
  if (which == 4) return at;
  at = align64(at + <u64>shapes * REC);
  if (which == 5) return at;
  return align64(at + <u64>pow2ceil(shapes * 2) * 4);
}

function valid_caps(maxNodes: u32, maxEdges: u32, maxFields: u32): bool {
  return maxNodes >= 1 && maxNodes <= CAP_MAX && maxEdges <= CAP_MAX && maxFields <= CAP_MAX;
}

/**
 * Bytes a trie of at most maxNodes records (nodes plus extra groups), maxEdges edges and
 * maxFields fields occupies. Returns 0 for invalid capacities (maxNodes 0, or any above
 * 2^26) or a size that does not fit in 32 bits.
 */
export function dpf_bytes(maxNodes: u32, maxEdges: u32, maxFields: u32): u32 {
  if (!valid_caps(maxNodes, maxEdges, maxFields)) return 0;
  const total = region_offset(maxNodes, maxEdges, maxFields, 6);
  return total > 0xffffffc0 ? 0 : <u32>total;
}

/**
 * Lays out an empty trie (the root node alone) at `t` (64-aligned, dpf_bytes long).
 * Returns false for invalid capacities or a misaligned address.
 */
export function dpf_init(t: usize, maxNodes: u32, maxEdges: u32, maxFields: u32): bool {
  if (dpf_bytes(maxNodes, maxEdges, maxFields) == 0 || (t & 63) != 0) return false;
  // The two interning tables must have InternTable's layout (constant-folded).
  if (offsetof<DpfTrie>('fields') - offsetof<DpfTrie>('fieldTable') != offsetof<InternTable>('live')
    || offsetof<DpfTrie>('shapes') - offsetof<DpfTrie>('shapeTable') != offsetof<InternTable>('live')) return false;
  const h = changetype<DpfTrie>(t);
  h.magic = DPF_MAGIC;
  h.version = 0;
  h.owners = 0;
  h.nodes = 1;
  h.groups = 0;
  h.edges = 0;
  h.stack = <u32>(t + HEADER);
  h.lanes = <u32>(t + HEADER + STACK_BYTES);
  h.path = <u32>(t + HEADER + STACK_BYTES + LANE_BYTES);
  h.staging = <u32>(t + HEADER + STACK_BYTES + LANE_BYTES + PATH_BYTES);
  h.pool = <u32>(t + <usize>region_offset(maxNodes, maxEdges, maxFields, 0));
  h.poolCap = maxNodes;
  h.poolTop = 1;
  h.poolFree = DPF_NONE;
  h.edgeTable = <u32>(t + <usize>region_offset(maxNodes, maxEdges, maxFields, 1));
  h.edgeMask = edge_slots(maxEdges) - 1;
  h.edgeCap = maxEdges;
  h.fieldTable = <u32>(t + <usize>region_offset(maxNodes, maxEdges, maxFields, 2));
  h.fieldCap = maxFields;
  h.fieldTop = 0;
  h.fieldFree = DPF_NONE;
  h.fieldHash = <u32>(t + <usize>region_offset(maxNodes, maxEdges, maxFields, 3));
  h.fieldHashMask = pow2ceil(max(maxFields, 1) * 2) - 1;
  h.fields = 0;
  const shapes = shape_cap(maxNodes);
  h.shapeTable = <u32>(t + <usize>region_offset(maxNodes, maxEdges, maxFields, 4));
  h.shapeCap = shapes;
  h.shapeTop = 1;
  h.shapeFree = DPF_NONE;
  h.shapeHash = <u32>(t + <usize>region_offset(maxNodes, maxEdges, maxFields, 5));
  h.shapeHashMask = pow2ceil(shapes * 2) - 1;
  h.shapes = 1;
  memory.fill(h.edgeTable, 0xff, (<usize>h.edgeMask + 1) * REC);
  memory.fill(h.fieldHash, 0xff, (<usize>h.fieldHashMask + 1) * 4);
  memory.fill(h.shapeHash, 0xff, (<usize>h.shapeHashMask + 1) * 4);
  set_record(h.pool, DPF_NONE, DPF_NONE, 0, DPF_NONE);
  // The root's shape: parent NONE, field NONE, one node (the root); not in the hash.
  set_record(h.shapeTable, DPF_NONE, DPF_NONE, 0, 1);
  return true;
}

@inline function set_record(r: usize, w0: u32, w1: u32, w2: u32, w3: u32): void {
  store<u32>(r, w0);
  store<u32>(r, w1, 4);
  store<u32>(r, w2, 8);
  store<u32>(r, w3, 12);
}

// ---- atoms -----------------------------------------------------------------------------

@inline function atom_at(staging: usize, i: u32): usize { return staging + (<usize>i << 4); }
@inline function atom_kind(a: usize): u32 { return load<u32>(a) >> 24; }
@inline function atom_value(a: usize): u32 { return load<u32>(a, 12); }

@inline function full_mask(size: u32): u32 {
  return size == 4 ? 0xffffffff : ((<u32>1 << (size << 3)) - 1);
}

// Whether one encoded atom is valid (the rules of canonicalDescription, per atom).
function atom_valid(a: usize): bool {
  const spec = load<u32>(a);
  const kind = spec >> 24;
  const size = (spec >> 16) & 0xff;
  const offset = spec & 0xffff;
  const mask = load<u32>(a, 4);
  const param = load<u32>(a, 8);
  const value = load<u32>(a, 12);
  if (kind == DPF_KIND_COMPARE) {
    if (size != 1 && size != 2 && size != 4) return false;
    return mask != 0 && mask <= full_mask(size) && param == 0 && (value & ~mask) == 0;
  }
  if (kind != DPF_KIND_SHIFT || value != 0) return false;
  const scale = param >> 16;
  const add = param & 0xffff;
  if (size == 0) return offset == 0 && mask == 0 && scale == 0 && add != 0;
  if (size != 1 && size != 2 && size != 4) return false;
  return mask != 0 && mask <= full_mask(size) && scale >= 1 && scale <= 256;
}

// Whether atoms[0..n) form an acceptable description: 1..64 valid atoms, not ending
// with a shift.
function description_valid(staging: usize, n: u32): bool {
  if (n == 0 || n > DPF_MAX_ATOMS) return false;
  for (let i: u32 = 0; i < n; i++) if (!atom_valid(atom_at(staging, i))) return false;
  return atom_kind(atom_at(staging, n - 1)) == DPF_KIND_COMPARE;
}

// ---- interning tables (fields and shapes) ---------------------------------------------

@inline function interned(tab: InternTable, id: u32): usize { return <usize>tab.records + (<usize>id << 4); }

@inline function interned_home(r: usize, mask: u32): u32 {
  return dpf_hash_inline(load<u32>(r), load<u32>(r, 4), load<u32>(r, 8)) & mask;
}

/** The id of the record with key (k0, k1, k2), or DPF_NONE. */
function intern_find(tab: InternTable, k0: u32, k1: u32, k2: u32): u32 {
  const hash = <usize>tab.hash;
  const mask = tab.hashMask;
  let i = dpf_hash_inline(k0, k1, k2) & mask;
  while (true) {
    const id = load<u32>(hash + (<usize>i << 2));
    if (id == DPF_NONE) return DPF_NONE;
    const r = interned(tab, id);
    if (load<u32>(r) == k0 && load<u32>(r, 4) == k1 && load<u32>(r, 8) == k2) return id;
    i = (i + 1) & mask;
  }
}

// Adds one reference to the record with key (k0, k1, k2), creating it if needed (the
// caller checked there is room). Returns its id.
function intern_acquire(tab: InternTable, k0: u32, k1: u32, k2: u32): u32 {
  let id = intern_find(tab, k0, k1, k2);
  if (id == DPF_NONE) {
    id = tab.free;
    if (id != DPF_NONE) tab.free = load<u32>(interned(tab, id), 12);
    else id = tab.top++;
    const r = interned(tab, id);
    set_record(r, k0, k1, k2, 0);
    const hash = <usize>tab.hash;
    const mask = tab.hashMask;
    let i = interned_home(r, mask);
    while (load<u32>(hash + (<usize>i << 2)) != DPF_NONE) i = (i + 1) & mask;
    store<u32>(hash + (<usize>i << 2), id);
    tab.live++;
  }
  const r = interned(tab, id);
  store<u32>(r, load<u32>(r, 12) + 1, 12);
  return id;
}

// Drops one reference from record `id`; at zero the record leaves the hash (backward
// shift) and goes to the free list. Returns true if it was freed.
function intern_release(tab: InternTable, id: u32): bool {
  const r = interned(tab, id);
  const refs = load<u32>(r, 12) - 1;
  store<u32>(r, refs, 12);
  if (refs != 0) return false;
  const hash = <usize>tab.hash;
  const mask = tab.hashMask;
  let i = interned_home(r, mask);
  while (load<u32>(hash + (<usize>i << 2)) != id) i = (i + 1) & mask;
  let j = i;
  while (true) {
    j = (j + 1) & mask;
    const other = load<u32>(hash + (<usize>j << 2));
    if (other == DPF_NONE) break;
    // The entry at j may move back to i unless its home lies cyclically in (i, j].
    const home = interned_home(interned(tab, other), mask);
    if (((j - home) & mask) >= ((j - i) & mask)) {
      store<u32>(hash + (<usize>i << 2), other);
      i = j;
    }
  }
  store<u32>(hash + (<usize>i << 2), DPF_NONE);
  store<u32>(r, tab.free, 12);
  tab.free = id;
  tab.live--;
  return true;
}

/** The field id of the field of `atom` (an encoded atom), or DPF_NONE if not interned. */
@inline function field_find(h: DpfTrie, atom: usize): u32 {
  return intern_find(field_table(h), load<u32>(atom), load<u32>(atom, 4), load<u32>(atom, 8));
}

// ---- edges -------------------------------------------------------------------------------

@inline function edge_find(edges: usize, mask: u32, parent: u32, field: u32, value: u32): u32 {
  let i = dpf_hash_inline(parent, field, value) & mask;
  const key = (<u64>field << 32) | <u64>parent;
  while (true) {
    const e = edges + (<usize>i << 4);
    const k = load<u64>(e);
    if (k == key && load<u32>(e, 8) == value) return load<u32>(e, 12);
    if (<u32>k == DPF_NONE) return DPF_NONE;
    i = (i + 1) & mask;
  }
}

function edge_add(h: DpfTrie, parent: u32, field: u32, value: u32, child: u32): void {
  const edges = <usize>h.edgeTable;
  const mask = h.edgeMask;
  let i = dpf_hash_inline(parent, field, value) & mask;
  while (load<u32>(edges + (<usize>i << 4)) != DPF_NONE) i = (i + 1) & mask;
  set_record(edges + (<usize>i << 4), parent, field, value, child);
  h.edges++;
}

// Removes the edge (parent, field, value), which must exist, by backward shift.
function edge_remove(h: DpfTrie, parent: u32, field: u32, value: u32): void {
  const edges = <usize>h.edgeTable;
  const mask = h.edgeMask;
  let i = dpf_hash_inline(parent, field, value) & mask;
  while (true) {
    const e = edges + (<usize>i << 4);
    if (load<u32>(e) == parent && load<u32>(e, 4) == field && load<u32>(e, 8) == value) break;
    i = (i + 1) & mask;
  }
  let j = i;
  while (true) {
    j = (j + 1) & mask;
    const e = edges + (<usize>j << 4);
    if (load<u32>(e) == DPF_NONE) break;
    const home = dpf_hash_inline(load<u32>(e), load<u32>(e, 4), load<u32>(e, 8)) & mask;
    if (((j - home) & mask) >= ((j - i) & mask)) {
      memory.copy(edges + (<usize>i << 4), e, REC);
      i = j;
    }
  }
  store<u32>(edges + (<usize>i << 4), DPF_NONE);
  h.edges--;
}

// ---- records (nodes and groups) -------------------------------------------------------

@inline function record(h: DpfTrie, id: u32): usize { return <usize>h.pool + (<usize>id << 4); }

function record_alloc(h: DpfTrie): u32 {
  let id = h.poolFree;
  if (id != DPF_NONE) h.poolFree = load<u32>(record(h, id), 12);
  else id = h.poolTop++;
  return id;
}

function record_free(h: DpfTrie, id: u32): void {
  set_record(record(h, id), DPF_NONE, DPF_NONE, 0, h.poolFree);
  h.poolFree = id;
}

// The group of `node` for `field`: the address of the record holding it (the node
// record itself for the first group), or 0 if the node has no such group.
function group_find(h: DpfTrie, node: u32, field: u32): usize {
  let g = record(h, node);
  while (true) {
    const f = load<u32>(g, 4);
    if (f == field) return g;
    if (f == DPF_NONE || f > field) return 0;
    const next = load<u32>(g, 12);
    if (next == DPF_NONE) return 0;
    g = record(h, next);
  }
}

// Whether adding a group for `field` to `node` takes a pool record (the node already has
// a group, and none for this field).
function group_needs_record(h: DpfTrie, node: u32, field: u32): bool {
  if (load<u32>(record(h, node), 4) == DPF_NONE) return false;
  return field == DPF_NONE || group_find(h, node, field) == 0;
}

// Adds an empty group for `field`, which `node` lacks, in field-id order (the caller
// checked there is a record for it). Returns the address of its record.
function group_add(h: DpfTrie, node: u32, field: u32): usize {
  const head = record(h, node);
  const first = load<u32>(head, 4);
  if (first == DPF_NONE) {
    store<u32>(head, field, 4);
    store<u32>(head, 0, 8);
    store<u32>(head, DPF_NONE, 12);
    return head;
  }
  const id = record_alloc(h);
  const r = record(h, id);
  h.groups++;
  if (field < first) {
    // The new group goes first: the old first group moves out to the new record.
    set_record(r, DPF_NONE, first, load<u32>(head, 8), load<u32>(head, 12));
    store<u32>(head, field, 4);
    store<u32>(head, 0, 8);
    store<u32>(head, id, 12);
    return head;
  }
  let g = head;
  while (true) {
    const next = load<u32>(g, 12);
    if (next == DPF_NONE || load<u32>(record(h, next), 4) > field) {
      set_record(r, DPF_NONE, field, 0, next);
      store<u32>(g, id, 12);
      return r;
    }
    g = record(h, next);
  }
}

// Drops one edge from `node`'s group for `field` (which must exist); removes the group
// when it empties, releasing its field.
function group_release(h: DpfTrie, node: u32, field: u32): void {
  const head = record(h, node);
  let prev: usize = 0;
  let g = head;
  while (load<u32>(g, 4) != field) {
    prev = g;
    g = record(h, load<u32>(g, 12));
  }
  const count = load<u32>(g, 8) - 1;
  store<u32>(g, count, 8);
  if (count != 0) return;
  intern_release(field_table(h), field);
  const next = load<u32>(g, 12);
  if (prev == 0) {
    if (next == DPF_NONE) {
      store<u32>(head, DPF_NONE, 4);
      store<u32>(head, 0, 8);
      return;
    }
    // The second group becomes the first.
    const r = record(h, next);
    store<u32>(head, load<u32>(r, 4), 4);
    store<u32>(head, load<u32>(r, 8), 8);
    store<u32>(head, load<u32>(r, 12), 12);
    record_free(h, next);
  } else {
    const id = load<u32>(prev, 12);
    store<u32>(prev, next, 12);
    record_free(h, id);
  }
  h.groups--;
}

// ---- insert and remove --------------------------------------------------------------------

// Scratch arrays of the path (see the region diagram): node ids, shape ids, field ids.
@inline function path_node(h: DpfTrie, i: u32): usize { return <usize>h.path + (<usize>i << 2); }
@inline function path_shape(h: DpfTrie, i: u32): usize { return <usize>h.path + PATH_SHAPES + (<usize>i << 2); }
@inline function path_field(h: DpfTrie, i: u32): usize { return <usize>h.path + PATH_FIELDS + (<usize>i << 2); }

// Follows the n atoms at `staging` from the root as far as the trie has their edges,
// and their fields as far as the shape table has them. Fills the path scratch: node
// ids [0..k], shape ids [0..ks], and every atom's field id (DPF_NONE where the field
// is not interned). Returns k | ks << 8 (k <= ks <= n <= 64).
function walk(h: DpfTrie, staging: usize, n: u32): u32 {
  const shapeTab = shape_table(h);
  let node: u32 = 0;
  let shape: u32 = 0;
  let k: u32 = 0;
  let ks: u32 = 0;
  store<u32>(path_node(h, 0), 0);
  store<u32>(path_shape(h, 0), 0);
  for (let i: u32 = 0; i < n; i++) {
    const a = atom_at(staging, i);
    const f = field_find(h, a);
    store<u32>(path_field(h, i), f);
    if (f == DPF_NONE || ks < i) continue;
    if (k == i) {
      node = edge_find(h.edgeTable, h.edgeMask, node, f, atom_value(a));
      if (node != DPF_NONE) store<u32>(path_node(h, ++k), node);
    }
    shape = intern_find(shapeTab, shape, f, 0);
    if (shape != DPF_NONE) store<u32>(path_shape(h, ++ks), shape);
  }
  return k | (ks << 8);
}

/**
 * Merges the description of `atomCount` encoded atoms at `staging` into the trie with
 * terminal `owner`. Returns DPF_OK; DPF_DUPLICATE when an equal description already
 * has a terminal; DPF_FULL when a record, edge, field or shape would not fit; DPF_BAD
 * for an invalid description or owner 0xffffffff. On any failure the trie is unchanged.
 * Control plane: call between classifications.
 */
export function dpf_insert(t: usize, staging: usize, atomCount: u32, owner: u32): u32 {
  const h = changetype<DpfTrie>(t);
  if (owner == DPF_NONE || !description_valid(staging, atomCount)) return DPF_BAD;
  const n = atomCount;
  const walked = walk(h, staging, n);
  const k = walked & 0xff;
  const ks = walked >> 8;
  let node = load<u32>(path_node(h, k));
  if (k == n) {
    const term = record(h, node);
    if (load<u32>(term) != DPF_NONE) return DPF_DUPLICATE;
    store<u32>(term, owner);
    h.owners++;
    return DPF_OK;
  }
  // What the new part needs: every check before any change. Nodes k+1..n are new, and
  // so are shape nodes ks+1..n; a field not interned is counted once.
  let newFields: u32 = 0;
  for (let i = k; i < n; i++) {
    if (load<u32>(path_field(h, i)) != DPF_NONE) continue;
    let seen = false;
    const a = atom_at(staging, i);
    for (let j = k; j < i && !seen; j++) {
      const b = atom_at(staging, j);
      seen = load<u32>(path_field(h, j)) == DPF_NONE
        && load<u32>(a) == load<u32>(b) && load<u32>(a, 4) == load<u32>(b, 4) && load<u32>(a, 8) == load<u32>(b, 8);
    }
    if (!seen) newFields++;
  }
  const newRecords = (n - k) + (group_needs_record(h, node, load<u32>(path_field(h, k))) ? 1 : 0);
  if (<u64>h.nodes + h.groups + newRecords > <u64>h.poolCap) return DPF_FULL;
  if (<u64>h.edges + (n - k) > <u64>h.edgeCap) return DPF_FULL;
  if (<u64>h.fields + newFields > <u64>h.fieldCap) return DPF_FULL;
  if (<u64>h.shapes + (n - ks) > <u64>h.shapeCap) return DPF_FULL;
  // Build: extend the path from node k, interning fields and shape nodes on the way.
  const fieldTab = field_table(h);
  const shapeTab = shape_table(h);
  let shape = load<u32>(path_shape(h, k));
  let shapeChanged = false;
  for (let i = k; i < n; i++) {
    const a = atom_at(staging, i);
    let f = load<u32>(path_field(h, i));
    let g: usize = f == DPF_NONE ? 0 : group_find(h, node, f);
    if (g == 0) {
      f = intern_acquire(fieldTab, load<u32>(a), load<u32>(a, 4), load<u32>(a, 8));
      g = group_add(h, node, f);
    }
    store<u32>(g, load<u32>(g, 8) + 1, 8);
    const child = record_alloc(h);
    set_record(record(h, child), DPF_NONE, DPF_NONE, 0, DPF_NONE);
    h.nodes++;
    edge_add(h, node, f, atom_value(a), child);
    const before = shapeTab.live;
    shape = intern_acquire(shapeTab, shape, f, 0);
    if (shapeTab.live != before) shapeChanged = true;
    node = child;
  }
  store<u32>(record(h, node), owner);
  h.owners++;
  if (shapeChanged) h.version++;
  return DPF_OK;
}

/**
 * Removes the terminal of the description at `staging` (atomCount encoded atoms) and
 * prunes the nodes, edges, groups, fields and shape nodes nothing uses any more.
 * Returns the owner value the terminal held, or DPF_NONE when the description is
 * invalid or has no terminal. Control plane: call between classifications.
 */
export function dpf_remove(t: usize, staging: usize, atomCount: u32): u32 {
  const h = changetype<DpfTrie>(t);
  if (!description_valid(staging, atomCount)) return DPF_NONE;
  const n = atomCount;
  if ((walk(h, staging, n) & 0xff) != n) return DPF_NONE;
  const term = record(h, load<u32>(path_node(h, n)));
  const owner = load<u32>(term);
  if (owner == DPF_NONE) return DPF_NONE;
  store<u32>(term, DPF_NONE);
  h.owners--;
  let shapeChanged = false;
  for (let i = n; i > 0; i--) {
    const id = load<u32>(path_node(h, i));
    const r = record(h, id);
    if (load<u32>(r) != DPF_NONE || load<u32>(r, 4) != DPF_NONE) break;
    const parent = load<u32>(path_node(h, i - 1));
    const f = load<u32>(path_field(h, i - 1));
    record_free(h, id);
    h.nodes--;
    if (intern_release(shape_table(h), load<u32>(path_shape(h, i)))) shapeChanged = true;
    edge_remove(h, parent, f, atom_value(atom_at(staging, i - 1)));
    group_release(h, parent, f);
  }
  if (shapeChanged) h.version++;
  return owner;
}

/** The field id of the field of the encoded atom at `atom`, or DPF_NONE if no group uses it. */
export function dpf_field_find(t: usize, atom: usize): u32 {
  return field_find(changetype<DpfTrie>(t), atom);
}

// ---- classification -------------------------------------------------------------------

@inline function load_be(p: usize, size: u32): u32 {
  if (size == 1) return <u32>load<u8>(p);
  if (size == 2) return <u32>bswap<u16>(load<u16>(p));
  return bswap<u32>(load<u32>(p));
}

// The walk, interleaved. A burst is classified DPF_LANES packets at a time: each lane
// holds one packet's walk (its registers spilled to a lane record between steps, its
// stack of its own), and the lanes take turns, one edge each. The loads of one step
// (node record, field record, packet bytes, edge slot) depend on each other, so a single
// walk waits on each in turn; the steps of different lanes are independent, and the
// processor overlaps their waits. With a large trie, where those loads miss the cache,
// this is most of the cost (DPDK's lookup_bulk pipelines its hash lookups likewise).
//
//   Lane (64 bytes at lanes + lane*64, 40 used; the lane's stack is at stack + lane*1024)
//   ┌──────┬──────┬───────┬──────┬──────┬───────────┬──────┬────────┬──────┬───────┐
//   │ node │ base │ depth │ g    │ best │ bestDepth │ pkt  │ capLen │ sp   │ index │
//   └──────┴──────┴───────┴──────┴──────┴───────────┴──────┴────────┴──────┴───────┘
//   +0     +4     +8      +12    +16    +20         +24    +28      +32    +36
//   g: address of the record holding the next group to try (0: none left); index: the
//   packet's position in the burst, DPF_NONE for an idle lane.

@unmanaged class Lane {
  node: u32;
  base: u32;
  depth: u32;
  g: u32;
  best: u32;
  bestDepth: u32;
  pkt: u32;
  capLen: u32;
  sp: u32;
  index: u32;
}

// Starts packet `index` of the burst in lane record `lr`: from slots[index] of `arena`,
// or, when arena is 0, the one packet (pkt, capLen).
@inline function lane_start(lr: usize, pool: usize, arena: usize, slots: usize, index: u32, pkt: usize, capLen: u32): void {
  if (arena != 0) {
    const a = changetype<ArenaHeader>(arena);
    const slot = load<u32>(slots + (<usize>index << 2));
    pkt = <usize>a.data + <usize>slot * <usize>a.slotSize;
    capLen = changetype<SlotMeta>(slot_meta(arena, slot)).capLen;
  }
  const l = changetype<Lane>(lr);
  l.node = 0;
  l.base = 0;
  l.depth = 0;
  l.g = <u32>pool;
  l.best = DPF_NONE;
  l.bestDepth = 0;
  l.pkt = <u32>pkt;
  l.capLen = capLen;
  l.sp = 0;
  l.index = index;
}

// Classifies n packets — slots[0..n) of `arena`, or the one packet (pkt, capLen) when
// arena is 0 — writing each owner (or DPF_NONE) to results[i]. Returns the matches.
function classify(t: usize, arena: usize, slots: usize, n: u32, results: usize, pkt: usize, capLen: u32): u32 {
  const h = changetype<DpfTrie>(t);
  const pool = <usize>h.pool;
  const fields = <usize>h.fieldTable;
  const edges = <usize>h.edgeTable;
  const emask = h.edgeMask;
  const lanes = <usize>h.lanes;
  let next: u32 = 0;
  let active: u32 = 0;
  let matched: u32 = 0;
  for (let l: usize = 0; l < <usize>DPF_LANES; l++) {
    const lr = lanes + (l << 6);
    if (next < n) {
      lane_start(lr, pool, arena, slots, next++, pkt, capLen);
      active++;
    } else {
      changetype<Lane>(lr).index = DPF_NONE;
    }
  }
  let lane: usize = 0;
  while (active != 0) {
    const l = changetype<Lane>(lanes + (lane << 6));
    const stack = <usize>h.stack + (lane << 10);
    lane = (lane + 1) & (<usize>DPF_LANES - 1);
    const index = l.index;
    if (index == DPF_NONE) continue;
    let node = l.node;
    let base = l.base;
    let depth = l.depth;
    let g = <usize>l.g;
    let best = l.best;
    let bestDepth = l.bestDepth;
    const p = <usize>l.pkt;
    const cap = <u64>l.capLen;
    let sp = <usize>l.sp;
    let done = false;
    // One step: try groups until an edge is followed (then yield to the next lane) or
    // the walk is over.
    while (true) {
      if (g == 0) {
        if (sp == 0) { done = true; break; }
        sp--;
        const fp = stack + (sp << 4);
        node = load<u32>(fp);
        base = load<u32>(fp, 4);
        depth = load<u32>(fp, 8);
        g = <usize>load<u32>(fp, 12);
        continue;
      }
      const f = load<u32>(g, 4);
      if (f == DPF_NONE) { g = 0; continue; }
      const more = load<u32>(g, 12);
      const after = more == DPF_NONE ? <usize>0 : pool + (<usize>more << 4);
      const fr = fields + (<usize>f << 4);
      const spec = load<u32>(fr);
      const size = (spec >> 16) & 0xff;
      let value: u32 = 0;
      let nb = base;
      let ok = true;
      if (size != 0) {
        const at = <u64>base + <u64>(spec & 0xffff);
        if (at + size > cap) ok = false;
        else value = load_be(p + <usize>at, size) & load<u32>(fr, 4);
      }
      if (ok && (spec >> 24) != 0) {
        const param = load<u32>(fr, 8);
        const moved = <u64>base + <u64>value * <u64>(param >> 16) + <u64>(param & 0xffff);
        if (moved > cap) ok = false;
        nb = <u32>moved;
        value = 0;
      }
      const child = ok ? edge_find(edges, emask, node, f, value) : DPF_NONE;
      if (child == DPF_NONE) { g = after; continue; }
      if (after != 0) {
        const fp = stack + (sp << 4);
        store<u32>(fp, node);
        store<u32>(fp, base, 4);
        store<u32>(fp, depth, 8);
        store<u32>(fp, <u32>after, 12);
        sp++;
      }
      node = child;
      base = nb;
      depth++;
      g = pool + (<usize>child << 4);
      const term = load<u32>(g);
      if (term != DPF_NONE && depth > bestDepth) {
        best = term;
        bestDepth = depth;
      }
      break;
    }
    if (done) {
      store<u32>(results + (<usize>index << 2), best);
      if (best != DPF_NONE) matched++;
      if (next < n) {
        lane_start(changetype<usize>(l), pool, arena, slots, next++, pkt, capLen);
      } else {
        l.index = DPF_NONE;
        active--;
      }
    } else {
      l.node = node;
      l.base = base;
      l.depth = depth;
      l.g = <u32>g;
      l.best = best;
      l.bestDepth = bestDepth;
      l.sp = <u32>sp;
    }
  }
  return matched;
}

/**
 * The owner value of the most specific description matching the packet of `capLen`
 * captured bytes at `pkt` (see the top of this file), or DPF_NONE if none matches.
 */
export function dpf_match(t: usize, pkt: usize, capLen: u32): u32 {
  const out = <usize>changetype<DpfTrie>(t).path + PATH_BYTES - 4;
  classify(t, 0, 0, 1, out, pkt, capLen);
  return load<u32>(out);
}

/**
 * Classifies slots[0..n) of `arena`: results[i] gets the owner value of the most
 * specific description matching slot i's packet, or DPF_NONE. Returns how many
 * packets matched. One classification at a time per trie (the lanes are shared).
 */
export function dpf_classify_burst(t: usize, arena: usize, slots: usize, n: u32, results: usize): u32 {
  return classify(t, arena, slots, n, results, 0, 0);
}

/**
 * Writes the trie header's field offsets, then the record size and DPF_MAX_ATOMS, to
 * `out` (u32 each) in the order of DPF_LAYOUT in bindings/dpf/trie.ts; returns the
 * entry count. Stores each entry directly: an array literal would allocate, and with
 * the stub runtime the heap starts where an arena may live.
 */
export function dpf_layout_table(out: usize): u32 {
  let i: usize = 0;
  store<u32>(out + (i++ << 2), offsetof<DpfTrie>('version'));
  store<u32>(out + (i++ << 2), offsetof<DpfTrie>('owners'));
  store<u32>(out + (i++ << 2), offsetof<DpfTrie>('nodes'));
  store<u32>(out + (i++ << 2), offsetof<DpfTrie>('groups'));
  store<u32>(out + (i++ << 2), offsetof<DpfTrie>('edges'));
  store<u32>(out + (i++ << 2), offsetof<DpfTrie>('fields'));
  store<u32>(out + (i++ << 2), offsetof<DpfTrie>('shapes'));
  store<u32>(out + (i++ << 2), offsetof<DpfTrie>('pool'));
  store<u32>(out + (i++ << 2), offsetof<DpfTrie>('poolCap'));
  store<u32>(out + (i++ << 2), offsetof<DpfTrie>('edgeTable'));
  store<u32>(out + (i++ << 2), offsetof<DpfTrie>('edgeMask'));
  store<u32>(out + (i++ << 2), offsetof<DpfTrie>('edgeCap'));
  store<u32>(out + (i++ << 2), offsetof<DpfTrie>('fieldTable'));
  store<u32>(out + (i++ << 2), offsetof<DpfTrie>('fieldCap'));
  store<u32>(out + (i++ << 2), offsetof<DpfTrie>('fieldTop'));
  store<u32>(out + (i++ << 2), offsetof<DpfTrie>('shapeTable'));
  store<u32>(out + (i++ << 2), offsetof<DpfTrie>('shapeCap'));
  store<u32>(out + (i++ << 2), offsetof<DpfTrie>('shapeTop'));
  store<u32>(out + (i++ << 2), offsetof<DpfTrie>('staging'));
  store<u32>(out + (i++ << 2), <u32>REC);
  store<u32>(out + (i++ << 2), DPF_MAX_ATOMS);
  return <u32>i;
}
