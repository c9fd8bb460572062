// PcapWriter: arena slots (or byte arrays) out to a classic pcap file.
//
// Why. Captures netpd writes (a tap owner, `netpd run` saving what it saw, test output)
// must open in every tool, so the writer produces the most widely read format: classic
// pcap, version 2.4, in the host's byte order (little-endian on every platform Node
// runs on), microsecond magic 0xa1b2c3d4 or nanosecond magic 0xa1b23c4d. What it writes
// is read identically by tshark (test/pcap-roundtrip.test.ts).
//
// Layout of the work. Record headers and packet bytes are copied into one reusable
// buffer (1 MiB by default) and written with one write(2) when it fills, on flush() and
// on close(). writeBurst copies straight from the arena's memory through a Buffer view
// made once per arena; nothing is allocated per packet.
//
// Guarantees. A packet longer than the snaplen is cut to it (caplen = snaplen, orig_len
// kept), as a capture with that snaplen would have. Timestamps must fit the format (whole
// seconds 0..2^32-1); anything else is an EINVAL naming the packet, raised before that
// packet is buffered, so the file holds only whole records. Nothing reaches the disk
// before flush()/close() or a full buffer. A path that cannot be created raises ENOENT
// (no such directory), EISDIR (a directory) or EACCES; other I/O failures raise EIO.

import { closeSync, openSync, writeSync } from 'node:fs';
import type { Arena } from '../arena.js';
import { NetpdError, fileError } from '../errors.js';
import {
  LINKTYPE_ETHERNET, MAX_CAPLEN_STANDARD, PCAP_FILE_HEADER_LEN, PCAP_MAGIC_NSEC, PCAP_MAGIC_USEC, PCAP_RECORD_HEADER_LEN,
} from './format.js';

export interface PcapWriterOptions {
  /** LINKTYPE_* of every packet (default 1, Ethernet). */
  linkType?: number;
  /** Snapshot length written in the header; longer packets are cut to it (default 262144). */
  snaplen?: number;
  /** Nanosecond timestamps (magic 0xa1b23c4d) instead of microseconds (default false). */
  nanosecond?: boolean;
  /** Size of the write buffer in bytes (default 1 MiB, minimum 64). */
  bufferSize?: number;
}

/** Metadata of one packet for writePacket. */
export interface PcapRecordInfo {
  sec: number;
  nsec: number;
  /** Length on the wire (default: the length of the bytes given). */
  wireLen?: number;
}

const DEFAULT_BUFFER = 1024 * 1024;
const MAX_U32 = 0xffffffff;

export class PcapWriter {
  readonly path: string;
  readonly linkType: number;
  readonly snaplen: number;
  readonly nanosecond: boolean;

  private fd: number;
  private readonly buf: Buffer;
  private written = 0;
  private writtenBytes = 0;
  private pos = 0;
  private closed = false;
  // Buffer view over the memory of the last arena written from (made once per arena).
  private viewOf: ArrayBufferLike | null = null;
  private view: Buffer | null = null;

  /** Creates (or truncates) `path` and buffers the file header. Throws EINVAL, ENOENT, EISDIR, EACCES, EIO. */
  static create(path: string, options: PcapWriterOptions = {}): PcapWriter {
    const linkType = options.linkType ?? LINKTYPE_ETHERNET;
    const snaplen = options.snaplen ?? MAX_CAPLEN_STANDARD;
    const bufferSize = options.bufferSize ?? DEFAULT_BUFFER;
    if (!Number.isInteger(linkType) || linkType < 0 || linkType > 0xffff) {
      throw new NetpdError('EINVAL', `linkType must be an integer in 0..65535, got ${linkType}`);
    }
    if (!Number.isInteger(snaplen) || snaplen < 1 || snaplen > MAX_U32) {
      throw new NetpdError('EINVAL', `snaplen must be a positive 32-bit integer, got ${snaplen}`);
    }
    if (!Number.isInteger(bufferSize) || bufferSize < 64) {
      throw new NetpdError('EINVAL', `bufferSize must be an integer of at least 64 bytes, got ${bufferSize}`);
    }
    let fd: number;
    try {
      fd = openSync(path, 'w');
    } catch (cause) {
      throw fileError(cause, path, 'create');
    }
    return new PcapWriter(path, fd, linkType, snaplen, options.nanosecond ?? false, bufferSize);
  }

  private constructor(path: string, fd: number, linkType: number, snaplen: number, nanosecond: boolean, bufferSize: number) {
    this.path = path;
    this.fd = fd;
    this.linkType = linkType;
    this.snaplen = snaplen;
    this.nanosecond = nanosecond;
    this.buf = Buffer.allocUnsafe(bufferSize);
    const b = this.buf;
    b.writeUInt32LE(nanosecond ? PCAP_MAGIC_NSEC : PCAP_MAGIC_USEC, 0);
    b.writeUInt16LE(2, 4);
    b.writeUInt16LE(4, 6);
    b.writeInt32LE(0, 8);
    b.writeUInt32LE(0, 12);
    b.writeUInt32LE(snaplen, 16);
    b.writeUInt32LE(linkType, 20);
    this.pos = PCAP_FILE_HEADER_LEN;
  }

  /** Packets accepted so far (buffered or written). */
  get packetsWritten(): number {
    return this.written;
  }

  /** Captured bytes accepted so far (after snaplen truncation). */
  get bytesWritten(): number {
    return this.writtenBytes;
  }

  /**
   * Writes the packets of slots vec[0..n) with their metadata (capLen, wireLen,
   * timestamp). The slots are not released. Returns n. Throws EINVAL for a timestamp
   * the format cannot hold (the packets before it are kept), EIO on write failure.
   */
  writeBurst(arena: Arena, vec: Uint32Array, n: number): number {
    this.checkOpen();
    if (n > vec.length) n = vec.length;
    const mem = arena.bytes.buffer;
    if (this.viewOf !== mem) {
      this.view = Buffer.from(mem, arena.bytes.byteOffset, arena.bytes.byteLength);
      this.viewOf = mem;
    }
    const view = this.view as Buffer;
    for (let i = 0; i < n; i++) {
      const slot = vec[i];
      const start = arena.dataOffset(slot);
      this.record(view, start, arena.capLen(slot), arena.wireLen(slot), arena.timestampSec(slot), arena.timestampNsec(slot), i);
    }
    return n;
  }

  /** Writes one packet from a byte array (control plane, tests). Throws EINVAL, EIO. */
  writePacket(bytes: Uint8Array, info: PcapRecordInfo): void {
    this.checkOpen();
    const wireLen = info.wireLen ?? bytes.length;
    if (!Number.isInteger(wireLen) || wireLen < 0 || wireLen > MAX_U32) {
      throw new NetpdError('EINVAL', `wireLen must be a 32-bit unsigned integer, got ${wireLen}`);
    }
    const src = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.record(src, 0, bytes.length, wireLen, info.sec, info.nsec, -1);
  }

  /** Writes everything buffered to the file. */
  flush(): void {
    this.checkOpen();
    this.drain();
  }

  /** Flushes and closes the file. Idempotent. */
  close(): void {
    if (this.closed) return;
    try {
      this.drain();
    } finally {
      this.closed = true;
      closeSync(this.fd);
      this.fd = -1;
      this.view = null;
      this.viewOf = null;
    }
  }

  private record(src: Buffer, start: number, capLen: number, wireLen: number, sec: number, nsec: number, index: number): void {
    if (!(sec >= 0 && sec <= MAX_U32 && nsec >= 0 && nsec < 1e9) || !Number.isInteger(sec) || !Number.isInteger(nsec)) {
      const which = index >= 0 ? `packet ${index} of the burst` : 'the packet';
      throw new NetpdError('EINVAL', `${which} has timestamp ${sec}s ${nsec}ns, which a pcap record cannot hold (seconds 0..2^32-1, nanoseconds 0..999999999); writing ${this.path}`);
    }
    const cap = capLen < this.snaplen ? capLen : this.snaplen;
    const need = PCAP_RECORD_HEADER_LEN + cap;
    const b = this.buf;
    if (this.pos + need > b.length) this.drain();
    const p = this.pos;
    if (need <= b.length) {
      b.writeUInt32LE(sec, p);
      b.writeUInt32LE(this.nanosecond ? nsec : Math.floor(nsec / 1000), p + 4);
      b.writeUInt32LE(cap, p + 8);
      b.writeUInt32LE(wireLen, p + 12);
      src.copy(b, p + PCAP_RECORD_HEADER_LEN, start, start + cap);
      this.pos = p + need;
    } else {
      // Larger than the whole buffer: header through the buffer, bytes straight from the source.
      b.writeUInt32LE(sec, 0);
      b.writeUInt32LE(this.nanosecond ? nsec : Math.floor(nsec / 1000), 4);
      b.writeUInt32LE(cap, 8);
      b.writeUInt32LE(wireLen, 12);
      this.pos = PCAP_RECORD_HEADER_LEN;
      this.drain();
      this.writeAll(src, start, cap);
    }
    this.written++;
    this.writtenBytes += cap;
  }

  private drain(): void {
    if (this.pos === 0) return;
    const n = this.pos;
    this.pos = 0;
    this.writeAll(this.buf, 0, n);
  }

  private writeAll(src: Uint8Array, start: number, len: number): void {
    let done = 0;
    while (done < len) {
      try {
        done += writeSync(this.fd, src, start + done, len - done);
      } catch (cause) {
        throw new NetpdError('EIO', `cannot write ${this.path}: ${(cause as Error).message}`, { cause });
      }
    }
  }

  private checkOpen(): void {
    if (this.closed) throw new NetpdError('EINVAL', `the writer of ${this.path} is closed`);
  }
}
