// Constants of the two capture-file formats, shared by the reader and the writer.
//
// Classic pcap (libpcap's savefile, pcap-savefile(5)): a 24-byte file header, then per
// packet a 16-byte record header and the captured bytes. The magic number says the byte
// order and whether the second timestamp word counts microseconds or nanoseconds.
//
//   file header                          record header
//   +0  magic          u32               +0  ts_sec       u32
//   +4  version_major  u16 (2)           +4  ts_usec|nsec u32
//   +6  version_minor  u16 (4)           +8  incl_len     u32  (captured bytes that follow)
//   +8  thiszone       i32 (0)           +12 orig_len     u32  (length on the wire)
//   +12 sigfigs        u32 (0)
//   +16 snaplen        u32
//   +20 linktype       u32  (low 16 bits: LINKTYPE_*, top 4 bits: FCS length if 0x04000000)
//
// pcapng (draft-ietf-opsawg-pcapng): a sequence of blocks, each
//   +0 block type u32, +4 total length u32, body, total length u32 again,
// with the total length a multiple of 4 and at least 12. A Section Header Block starts a
// section with its own byte order (its byte-order magic) and its own interfaces
// (Interface Description Blocks, numbered from 0 in each section); packets are in
// Enhanced (6), Simple (3) or obsolete Packet (2) Blocks.
//
// Limits follow Wireshark's wiretap, the reader netpd is judged against: a record may
// hold at most 262144 captured bytes, except for the link types whose records are
// legitimately larger (D-Bus, USBPcap: 128 MiB; EBHSCR: 8 MiB); a pcapng block may be at
// most one maximal D-Bus packet plus 128 KiB of options.

export const PCAP_MAGIC_USEC = 0xa1b2c3d4;
export const PCAP_MAGIC_NSEC = 0xa1b23c4d;
export const PCAP_MAGIC_USEC_SWAPPED = 0xd4c3b2a1;
export const PCAP_MAGIC_NSEC_SWAPPED = 0x4d3cb2a1;
export const PCAP_FILE_HEADER_LEN = 24;
export const PCAP_RECORD_HEADER_LEN = 16;

export const PCAPNG_SHB = 0x0a0d0d0a;
export const PCAPNG_IDB = 1;
export const PCAPNG_PB = 2;
export const PCAPNG_SPB = 3;
export const PCAPNG_NRB = 4;
export const PCAPNG_ISB = 5;
export const PCAPNG_EPB = 6;
export const PCAPNG_BYTE_ORDER_MAGIC = 0x1a2b3c4d;
export const PCAPNG_BYTE_ORDER_MAGIC_SWAPPED = 0x4d3c2b1a;

/** Smallest legal block of each kind (header 8 + fixed body + trailer 4). */
export const PCAPNG_MIN_BLOCK = 12;
export const PCAPNG_MIN_SHB = 28;
export const PCAPNG_MIN_IDB = 20;
export const PCAPNG_MIN_EPB = 32;
export const PCAPNG_MIN_PB = 32;
export const PCAPNG_MIN_SPB = 16;

export const OPT_ENDOFOPT = 0;
export const OPT_IF_NAME = 2;
export const OPT_IF_TSRESOL = 9;
export const OPT_IF_FCSLEN = 13;
export const OPT_IF_TSOFFSET = 14;

/** Wireshark's WTAP_MAX_PACKET_SIZE_STANDARD, also libpcap's MAXIMUM_SNAPLEN. */
export const MAX_CAPLEN_STANDARD = 262144;
const MAX_CAPLEN_DBUS = 128 * 1024 * 1024;
const MAX_CAPLEN_USBPCAP = 128 * 1024 * 1024;
const MAX_CAPLEN_EBHSCR = 8 * 1024 * 1024;

/** Wireshark's MAX_BLOCK_SIZE: an EPB holding a maximal D-Bus packet plus 128 KiB of options. */
export const PCAPNG_MAX_BLOCK = PCAPNG_MIN_EPB + MAX_CAPLEN_DBUS + 131072;

export const LINKTYPE_ETHERNET = 1;
const LINKTYPE_DBUS = 231;
const LINKTYPE_USBPCAP = 249;
const LINKTYPE_EBHSCR = 279;

/** The largest captured length a record of this link type may have (Wireshark's limits). */
export function maxCapLenFor(linkType: number): number {
  switch (linkType) {
    case LINKTYPE_DBUS: return MAX_CAPLEN_DBUS;
    case LINKTYPE_USBPCAP: return MAX_CAPLEN_USBPCAP;
    case LINKTYPE_EBHSCR: return MAX_CAPLEN_EBHSCR;
    default: return MAX_CAPLEN_STANDARD;
  }
}
