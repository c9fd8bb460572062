// netpd's public surface.
export { NetpdError, type NetpdErrorCode } from './errors.js';
export { Arena, SLOT_TRUNCATED, type ArenaOptions, type ArenaStats } from './arena.js';
export { Ring, type RingOptions } from './ring.js';
export { Packet, PacketBatch } from './packet.js';
export type { Netio, NetioLike } from './netio.js';
export {
  PacketDispatcher,
  type DispatcherEvents,
  type DispatcherOptions,
  type DispatcherStats,
  type Description,
  type DropReason,
  type FilterType,
  type OwnerInfo,
  type OwnerStats,
  type RegisterOptions,
} from './dispatcher.js';
export {
  BpfFilter,
  type BpfFilterOptions,
  runFilter,
  validateProgram,
  parseDdd,
  formatDdd,
  BPF_MAXINSNS,
  type BpfInstruction,
  type BpfProgram,
  type FilterInput,
} from './bpf.js';
export { PcapReader, PcapWriter } from './pcap/index.js';
export type { BurstOptions, PcapReaderOptions } from './pcap/reader.js';
export { compileFilter, linkTypeName, linkTypeValue, type CompileOptions } from './filter/compile.js';
export { CaptureFilter, type CaptureFilterOptions } from './filter/capture-filter.js';
export { formatPacket, PacketPrinter, type PrintOptions } from './print/index.js';
export type { DpfDescription, DpfAtom, DpfCompare, DpfShift, DpfShiftSpec } from './dpf/description.js';
export {
  AfPacketSource, type AfPacketEvents, type AfPacketOptions, type AfPacketStats, type FanoutOptions, type FanoutMode, type NetInterface,
} from './live/afpacket.js';
