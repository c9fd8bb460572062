// Views of packets in the arena. Neither class copies packet bytes.
//
// A Packet handed to a netio's push() and the PacketBatch handed to pushBatch() are
// borrowed: they are valid during the call, and the dispatcher reuses the same
// objects for the next packet or run (so dispatch allocates nothing per packet). To
// keep a packet past the call, take a reference with retain(), which returns a Packet
// of your own to release() when done; the slot is not reused until then.

import { NetpdError } from './errors.js';
import { SLOT_TRUNCATED, type Arena } from './arena.js';

export class Packet {
  readonly arena: Arena;
  /** The slot index in the arena. */
  slot: number;

  constructor(arena: Arena, slot = 0) {
    this.arena = arena;
    this.slot = slot;
  }

  /** Captured bytes held in the slot. */
  get length(): number { return this.arena.capLen(this.slot); }
  /** Length on the wire (at least `length`). */
  get wireLength(): number { return this.arena.wireLen(this.slot); }
  /** True when the packet was longer than a slot and was cut. */
  get truncated(): boolean { return (this.arena.flags(this.slot) & SLOT_TRUNCATED) !== 0; }
  get ifIndex(): number { return this.arena.ifIndex(this.slot); }
  /** Timestamp in nanoseconds since the epoch (allocates a bigint). */
  get timestampNs(): bigint { return this.arena.timestampNs(this.slot); }
  /** Byte offset of the packet's first byte in `arena.bytes`. */
  get offset(): number { return this.arena.dataOffset(this.slot); }
  /** A Uint8Array over the captured bytes: no copy, but one small view object per call. */
  get data(): Uint8Array { return this.arena.bytes.subarray(this.offset, this.offset + this.length); }

  /** The byte at `at` (0-based). Throws EINVAL past the captured bytes. */
  u8(at: number): number {
    this.check(at, 1);
    return this.arena.bytes[this.offset + at];
  }
  /** The big-endian (network order) 16-bit value at `at`. */
  u16(at: number): number {
    this.check(at, 2);
    return this.arena.view.getUint16(this.offset + at, false);
  }
  /** The big-endian (network order) 32-bit value at `at`. */
  u32(at: number): number {
    this.check(at, 4);
    return this.arena.view.getUint32(this.offset + at, false);
  }

  private check(at: number, size: number): void {
    if (!(at >= 0 && at + size <= this.length)) {
      throw new NetpdError('EINVAL', `read of ${size} bytes at ${at} is outside the packet's ${this.length} captured bytes`);
    }
  }

  /** Takes a reference to the slot and returns a Packet of your own; release() it when done. */
  retain(): Packet {
    this.arena.retain(this.slot);
    return new Packet(this.arena, this.slot);
  }

  /** Drops a reference taken with retain(). */
  release(): void {
    this.arena.release(this.slot);
  }
}

export class PacketBatch {
  readonly arena: Arena;
  /** Slot indices; this batch is slots[start .. start + length). */
  slots: Uint32Array;
  start: number;
  length: number;
  private readonly cursor: Packet;

  constructor(arena: Arena, slots: Uint32Array, start = 0, length = 0) {
    this.arena = arena;
    this.slots = slots;
    this.start = start;
    this.length = length;
    this.cursor = new Packet(arena);
  }

  /** The slot index of the i-th packet. */
  slot(i: number): number { return this.slots[this.start + i]; }

  /**
   * The i-th packet as a borrowed cursor: the same Packet object is returned by every
   * call, moved to the i-th slot. Call retain() on it to keep a packet.
   */
  packet(i: number): Packet {
    if (!(i >= 0 && i < this.length)) throw new NetpdError('EINVAL', `packet ${i} is outside a batch of ${this.length}`);
    this.cursor.slot = this.slots[this.start + i];
    return this.cursor;
  }

  /** Iterates the batch with the borrowed cursor (see packet()). */
  *[Symbol.iterator](): IterableIterator<Packet> {
    for (let i = 0; i < this.length; i++) yield this.packet(i);
  }

  /** Adds a reference to every packet of the batch (each is later released on its own, or with arena.freeBurst). */
  retainAll(): void {
    this.arena.retainBurst(this.slots.subarray(this.start, this.start + this.length), this.length);
  }
}
