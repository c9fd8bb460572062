// Field offsets of the layouts JavaScript reads directly (slot metadata, the arena
// header's counters, dispatcher arrays, runs), written once into a table so that the
// bindings derive every offset from the declarations here instead of repeating them.
// The order of entries is the order of LAYOUT_FIELDS in bindings/core.ts.

import { ArenaHeader, SlotMeta } from './arena';
import { Dispatcher, Run } from './dispatch';

/** Writes the layout table to `out` (u32 entries); returns the entry count. */
export function layout_table(out: usize): u32 {
  const v: StaticArray<u32> = [
    <u32>offsetof<ArenaHeader>('slotSize'), <u32>offsetof<ArenaHeader>('slotCount'),
    <u32>offsetof<ArenaHeader>('meta'), <u32>offsetof<ArenaHeader>('data'),
    <u32>offsetof<ArenaHeader>('truncated'), <u32>offsetof<ArenaHeader>('allocFailures'),
    <u32>offsetof<SlotMeta>(), <u32>offsetof<SlotMeta>('capLen'), <u32>offsetof<SlotMeta>('wireLen'),
    <u32>offsetof<SlotMeta>('tsNs'), <u32>offsetof<SlotMeta>('ifIndex'), <u32>offsetof<SlotMeta>('flowHash'),
    <u32>offsetof<SlotMeta>('refCount'), <u32>offsetof<SlotMeta>('flags'),
    <u32>offsetof<Dispatcher>('count'), <u32>offsetof<Dispatcher>('order'), <u32>offsetof<Dispatcher>('runs'),
    <u32>offsetof<Dispatcher>('mem'), <u32>offsetof<Dispatcher>('staging'), <u32>offsetof<Dispatcher>('masks'),
    <u32>offsetof<Dispatcher>('filterCap'), <u32>offsetof<Dispatcher>('results'),
    <u32>offsetof<Run>(), <u32>offsetof<Run>('owner'), <u32>offsetof<Run>('start'), <u32>offsetof<Run>('count'),
    <u32>offsetof<Run>('bytes'),
  ];
  for (let i = 0; i < v.length; i++) store<u32>(out + (<usize>i << 2), unchecked(v[i]));
  return v.length;
}
