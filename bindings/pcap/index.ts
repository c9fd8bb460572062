// Capture files: PcapReader (classic pcap and pcapng, into arena slots) and PcapWriter
// (arena slots out to classic pcap). See reader.ts and writer.ts for the design notes.

export { PcapReader, PCAP_MAX_CAPLEN } from './reader.js';
export type { CaptureFormat, PcapInterface, PcapPacket, PcapReaderOptions } from './reader.js';
export { PcapWriter } from './writer.js';
export type { PcapRecordInfo, PcapWriterOptions } from './writer.js';
