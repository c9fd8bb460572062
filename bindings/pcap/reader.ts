// PcapReader: capture files (classic pcap and pcapng) into arena slots.
//
// Why. A capture file is the one packet source every test, benchmark and CLI verb
// shares, so its reader must be both exact (it reads what Wireshark reads: tshark is the
// reference, see test/pcap-tools.test.ts) and cheap enough to feed the hot path: one
// system call per megabyte, one copy per packet (file buffer -> slot), no allocation and
// no promise per packet.
//
// Layout of the work. The file is read with synchronous reads into one chunk buffer
// (1 MiB by default, reused). A burst runs in two passes:
//
//   scan   parse up to `max` records that are wholly in the buffer, remembering for each
//          its file offset, lengths, timestamp and interface in preallocated typed arrays
//          (the "record table"); refilling the buffer slides unconsumed bytes to its
//          front, so scanned records stay put relative to the file;
//   copy   take slots with one allocBurst, copy each record into its slot with
//          Buffer.copy, set its metadata, and advance the cursor past the records that
//          got slots.
//
// Records that did not get a slot (the arena ran short) are simply scanned again by the
// next call: nothing is lost and nothing is delivered twice. Blocks that change reader
// state (a pcapng Section Header or Interface Description Block) are only processed at
// the start of a burst, so a re-scan never processes one twice. A record larger than the
// buffer grows the buffer (only while nothing else is pending in the burst); growth is
// progressive, so a corrupt length cannot make the reader allocate much more memory
// than the file actually holds.
//
// Guarantees.
// - Every byte offset is checked before it is read; corrupt or truncated input raises
//   NetpdError('EPCAP', "<problem> at byte <offset> of <path>"). A file cut exactly at a
//   record boundary is simply a shorter file. Records before the damage are delivered
//   first; the error is raised by the call that would have to read the damaged record,
//   and again by every later call (errors are sticky: no loops on a bad file).
// - Limits follow Wireshark (format.ts): captured length <= 262144 bytes (more for the
//   D-Bus, USBPcap and EBHSCR link types), block length a multiple of 4 (libpcap's rule;
//   Wireshark rounds up instead) and at most ~128 MiB, matching trailing block length,
//   packet blocks naming a declared interface, SHB version 1.0 or 1.2.
// - Timestamps are exact: 64-bit pcapng times are divided in 16-bit digits (or with
//   BigInt for resolutions finer than 2^-32 s or 10^-9 s, which no common tool writes).
//   if_tsoffset is added, as tshark 4.0 does. Simple Packet Blocks carry no timestamp
//   and read as 0.0, as in Wireshark.
// - Interface indices are global across sections: ifIndex = position in
//   `reader.interfaces`; each entry keeps its section and its id within that section.
// - Packet bytes are delivered as stored in the file. (Wireshark strips the pseudo-header
//   of a few link types, e.g. SunATM, and byte-swaps USB/NFLOG headers of swapped files;
//   netpd leaves those to the dissector that consumes them.)

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { divmod64, remainder } from '../u64.js';

const PAUSE = new Int32Array(new SharedArrayBuffer(4));
import type { Arena } from '../arena.js';
import { NetpdError, fileError } from '../errors.js';
import { checkAborted } from '../events.js';
import { PacketBatch } from '../packet.js';
import { setImmediate as nextTurn } from 'node:timers/promises';
import {
  MAX_CAPLEN_STANDARD, OPT_ENDOFOPT, OPT_IF_FCSLEN, OPT_IF_NAME, OPT_IF_TSOFFSET, OPT_IF_TSRESOL,
  PCAP_FILE_HEADER_LEN, PCAP_MAGIC_NSEC, PCAP_MAGIC_NSEC_SWAPPED, PCAP_MAGIC_USEC, PCAP_MAGIC_USEC_SWAPPED,
  PCAP_RECORD_HEADER_LEN, PCAPNG_BYTE_ORDER_MAGIC, PCAPNG_BYTE_ORDER_MAGIC_SWAPPED, PCAPNG_EPB, PCAPNG_IDB,
  PCAPNG_MAX_BLOCK, PCAPNG_MIN_BLOCK, PCAPNG_MIN_EPB, PCAPNG_MIN_IDB, PCAPNG_MIN_PB, PCAPNG_MIN_SHB,
  PCAPNG_MIN_SPB, PCAPNG_PB, PCAPNG_SHB, PCAPNG_SPB, maxCapLenFor,
} from './format.js';

export type CaptureFormat = 'pcap' | 'pcapng';

/** One capture interface: the single one of a classic pcap file, or a pcapng IDB. */
export interface PcapInterface {
  /** LINKTYPE_* value (https://www.tcpdump.org/linktypes.html). */
  readonly linkType: number;
  /** Snapshot length the file declares (0 in pcapng means "no limit"). */
  readonly snaplen: number;
  /** if_name, when the IDB has one. */
  readonly name?: string;
  /** Timestamp units per second: 1e6 (microseconds), 1e9, 2^20, ... (if_tsresol). */
  readonly tsresol: number;
  /** Seconds added to every timestamp of this interface (if_tsoffset; 0 when absent). */
  readonly tsoffset: number;
  /** FCS bytes at the end of each frame when the file says (if_fcslen, pcap FCS bits); -1 if unknown. */
  readonly fcsLength: number;
  /** 0-based section (pcapng Section Header Block) this interface belongs to; 0 for classic pcap. */
  readonly section: number;
  /** The interface's id inside its section, as the file's packet blocks name it. */
  readonly localId: number;
}

/** A packet copied out of the file, for control-plane code and tests. */
export interface PcapPacket {
  /** The captured bytes (a copy, capLen long). */
  data: Uint8Array;
  capLen: number;
  wireLen: number;
  sec: number;
  nsec: number;
  /** Index into `reader.interfaces`. */
  ifIndex: number;
}

export interface PcapReaderOptions {
  /** The arena readBurst fills. Not needed for next()/packets()/readAllFromFile. */
  arena?: Arena;
  /** Size of the reusable read buffer, in bytes (default 1 MiB, minimum 64). */
  chunkSize?: number;
  /** Ends `for await` over the reader with Node's AbortError when aborted. */
  signal?: AbortSignal;
  /** Packets per batch of `for await` (default 256). */
  burstSize?: number;
}

/** Options of reader.bursts(); the reader's open options are the defaults. */
export interface BurstOptions {
  signal?: AbortSignal;
  burstSize?: number;
}

const DEFAULT_CHUNK = 1024 * 1024;

// Outcome of parsing one record or block.
const KIND_PACKET = 0; // a packet record, stored in the record table
const KIND_META = 1;   // a block without a packet (processed or skipped)
const KIND_END = 2;    // clean end of file
const KIND_STOP = 3;   // cannot go on in this burst (buffer full, or a state block while records are pending)

// Outcome of fill().
const FILL_OK = 0;
const FILL_SHORT = 1; // the file ends first
const FILL_FULL = 2;  // would have to grow the buffer while records are pending

// How an interface's 64-bit timestamps become seconds and nanoseconds.
const TS_POW10 = 0;   // 10^k units per second, k <= 9: 16-bit long division, nsec = rem * 10^(9-k)
const TS_POW2 = 1;    // 2^k units per second, k <= 32: shifts
const TS_BIGINT = 2;  // anything finer: BigInt (allocates; no common writer uses these)
const TS_CLASSIC = 3; // classic pcap: seconds word + micro/nanoseconds word

const TWO32 = 4294967296;

interface TsRule {
  mode: number;
  /** TS_POW10: units per second; TS_POW2: the exponent k. */
  param: number;
  /** TS_POW10: nanoseconds per unit. */
  mul: number;
  /** TS_BIGINT: units per second. */
  big: bigint;
  offset: number;
  maxCapLen: number;
  snaplen: number;
}

export class PcapReader {
  readonly path: string;
  readonly format: CaptureFormat;

  private fd: number;
  private readonly seekable: boolean;
  private readonly chunkSize: number;
  private readonly arena: Arena | null;
  private readonly arenaBytes: Uint8Array | null;

  // Read buffer: buf[0..bufLen) holds the file's bytes [bufOff, bufOff + bufLen).
  private buf: Buffer;
  private bufOff = 0;
  private bufLen = 0;
  /** File offset of the first byte not yet delivered (or processed, for metadata blocks). */
  private cursor = 0;
  /** Records scanned and not yet delivered in the current scan (fill() may not grow while > 0). */
  private pending = 0;
  /** Offset just after the record or block parsed last. */
  private nextPos = 0;
  private hitEnd = false;
  private done = false;
  private failure: NetpdError | null = null;
  private closed = false;

  // Byte order of the file (classic) or of the current section (pcapng).
  private le = true;
  private versionMajor = 0;
  private versionMinor = 0;

  // Classic pcap.
  private nano = false;
  /** 0: lengths in order; 1: swapped (version < 2.3); 2: swapped when incl > orig (2.3). */
  private lenSwap = 0;

  // pcapng.
  private sectionCount = 0;
  private sectionIfBase = 0;
  private sectionIfCount = 0;

  private readonly ifaces: PcapInterface[] = [];
  private readonly rules: TsRule[] = [];
  private mixed = false;

  // Record table, filled by scan() and consumed by readBurst()/next().
  private recPos = new Float64Array(0);
  private recEnd = new Float64Array(0);
  private recSec = new Float64Array(0);
  private recNsec = new Float64Array(0);
  private recCap = new Uint32Array(0);
  private recWire = new Uint32Array(0);
  private recIf = new Uint32Array(0);
  // Result of convertTimestamp().
  private tsSec = 0;
  private tsNsec = 0;

  private delivered = 0;
  private deliveredBytes = 0;
  private readonly burstDefaults: BurstOptions;

  /**
   * Opens a capture file and reads its header (for pcapng: the first Section Header
   * Block and the blocks before the first packet). Throws NetpdError EPCAP when the file
   * is not a capture file or its header is damaged, ENOENT when it does not exist,
   * EISDIR when it is a directory, EACCES when permission is denied, EIO for any
   * other failure to open or read it (each naming the path).
   */
  static open(path: string, options: PcapReaderOptions = {}): PcapReader {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (cause) {
      throw fileError(cause, path, 'open');
    }
    try {
      return new PcapReader(path, fd, options);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  /**
   * A reader over an open file descriptor (0 for standard input, as `-r -`), which may
   * be a file, a pipe or a socket. `name` is used in messages. The reader closes the fd.
   */
  static fromFd(fd: number, name: string, options: PcapReaderOptions = {}): PcapReader {
    return new PcapReader(name, fd, options);
  }

  /** Every packet of a file, copied (control plane and tests; no arena needed). */
  static readAllFromFile(path: string, options: Omit<PcapReaderOptions, 'arena'> = {}): PcapPacket[] {
    const reader = PcapReader.open(path, options);
    try {
      return [...reader.packets()];
    } finally {
      reader.close();
    }
  }

  private constructor(path: string, fd: number, options: PcapReaderOptions) {
    this.path = path;
    this.fd = fd;
    const chunk = options.chunkSize ?? DEFAULT_CHUNK;
    if (!Number.isInteger(chunk) || chunk < 64) {
      throw new NetpdError('EINVAL', `chunkSize must be an integer of at least 64 bytes, got ${chunk}`);
    }
    this.chunkSize = chunk;
    this.burstDefaults = { signal: options.signal, burstSize: options.burstSize };
    this.buf = Buffer.allocUnsafe(chunk);
    this.arena = options.arena ?? null;
    this.arenaBytes = this.arena ? this.arena.bytes : null;
    this.seekable = fstatSync(fd).isFile();

    if (this.fill(0, 4) !== FILL_OK) {
      throw this.bad(`file is too short for a capture file header (${this.avail(0)} bytes)`, 0);
    }
    const magic = this.buf.readUInt32LE(0);
    if (magic === PCAPNG_SHB) {
      this.format = 'pcapng';
      this.readPcapngHeader();
    } else if (magic === PCAP_MAGIC_USEC || magic === PCAP_MAGIC_NSEC ||
               magic === PCAP_MAGIC_USEC_SWAPPED || magic === PCAP_MAGIC_NSEC_SWAPPED) {
      this.format = 'pcap';
      this.le = magic === PCAP_MAGIC_USEC || magic === PCAP_MAGIC_NSEC;
      this.nano = magic === PCAP_MAGIC_NSEC || magic === PCAP_MAGIC_NSEC_SWAPPED;
      this.readPcapHeader();
    } else {
      throw this.bad(`unknown magic number 0x${hex32(this.buf.readUInt32BE(0))}: not a pcap or pcapng file`, 0);
    }
  }

  // ---- public state ------------------------------------------------------------------

  /** Link type of the first interface (-1 when a pcapng file has declared none yet). */
  get linkType(): number {
    return this.ifaces.length > 0 ? this.ifaces[0].linkType : -1;
  }

  /** Snapshot length of the first interface (0 when none is declared yet). */
  get snaplen(): number {
    return this.ifaces.length > 0 ? this.ifaces[0].snaplen : 0;
  }

  /** True when the file's interfaces do not all have the same link type. */
  get mixedLinkTypes(): boolean {
    return this.mixed;
  }

  /** Interfaces seen so far (pcapng IDBs are added as the reader meets them). */
  get interfaces(): readonly PcapInterface[] {
    return this.ifaces;
  }

  /** Format version: the file header's (pcap) or the current section's (pcapng). */
  get version(): { major: number; minor: number } {
    return { major: this.versionMajor, minor: this.versionMinor };
  }

  /** Byte order of the file (pcap) or of the current section (pcapng). */
  get byteOrder(): 'le' | 'be' {
    return this.le ? 'le' : 'be';
  }

  /** Classic pcap with nanosecond timestamps (magic 0xa1b23c4d). */
  get nanosecond(): boolean {
    return this.nano;
  }

  /** pcapng sections met so far (1 for classic pcap). */
  get sections(): number {
    return this.format === 'pcap' ? 1 : this.sectionCount;
  }

  /** Packets delivered so far (readBurst and next together). */
  get packetsRead(): number {
    return this.delivered;
  }

  /** Captured bytes of the packets delivered so far (as in the file, before any slot truncation). */
  get bytesRead(): number {
    return this.deliveredBytes;
  }

  /** File offset of the first byte not yet delivered. */
  get offset(): number {
    return this.cursor;
  }

  /** True once the end of the file was reached and every packet was delivered. */
  get eof(): boolean {
    return this.done;
  }

  // ---- reading -----------------------------------------------------------------------

  /**
   * Reads up to `max` packets (at most vec.length) into fresh arena slots and writes
   * their indices into vec[0..k). Returns k. Each slot holds min(capLen, slotSize)
   * bytes and its metadata (arena.setPacket: longer packets are flagged truncated).
   * Returns 0 at the end of the file (then `eof` is true) or when the arena has no free
   * slot (then `eof` is false and the next call resumes at the same record). Fewer than
   * `max` means the arena ran short, the buffer ended, or the next record is damaged (the
   * next call throws). Throws EPCAP for a damaged file, EINVAL without an arena.
   */
  readBurst(vec: Uint32Array, max: number): number {
    const arena = this.arena;
    const bytes = this.arenaBytes;
    if (arena === null || bytes === null) {
      throw new NetpdError('EINVAL', `readBurst needs an arena: PcapReader.open(${JSON.stringify(this.path)}, { arena })`);
    }
    if (max > vec.length) max = vec.length;
    if (!(max >= 1)) return 0;
    const n = this.scan(Math.floor(max));
    if (n === 0) {
      this.done = this.hitEnd;
      return 0;
    }
    const k = arena.allocBurst(vec, n);
    const buf = this.buf;
    const base = this.bufOff;
    const slotSize = arena.slotSize;
    let total = 0;
    for (let i = 0; i < k; i++) {
      const slot = vec[i];
      const cap = this.recCap[i];
      const start = this.recPos[i] - base;
      buf.copy(bytes, arena.dataOffset(slot), start, start + (cap < slotSize ? cap : slotSize));
      arena.setPacket(slot, cap, this.recWire[i], this.recSec[i], this.recNsec[i], this.recIf[i]);
      total += cap;
    }
    if (k > 0) {
      this.cursor = this.recEnd[k - 1];
      this.delivered += k;
      this.deliveredBytes += total;
    }
    this.done = this.hitEnd && k === n;
    return k;
  }

  /** The next packet, copied; null at the end of the file. Throws EPCAP for a damaged file. */
  next(): PcapPacket | null {
    const n = this.scan(1);
    if (n === 0) {
      this.done = this.hitEnd;
      return null;
    }
    const cap = this.recCap[0];
    const start = this.recPos[0] - this.bufOff;
    const data = new Uint8Array(cap);
    this.buf.copy(data, 0, start, start + cap);
    this.cursor = this.recEnd[0];
    this.delivered += 1;
    this.deliveredBytes += cap;
    return {
      data, capLen: cap, wireLen: this.recWire[0], sec: this.recSec[0], nsec: this.recNsec[0], ifIndex: this.recIf[0],
    };
  }

  /** Iterates the remaining packets, copied. */
  *packets(): Generator<PcapPacket, void, undefined> {
    for (;;) {
      const p = this.next();
      if (p === null) return;
      yield p;
    }
  }

  [Symbol.iterator](): Generator<PcapPacket, void, undefined> {
    return this.packets();
  }

  /**
   * The rest of the file as bursts in the arena: `for await (const batch of reader)`.
   * Each PacketBatch (the same object every time, over the reader's own slot vector) is
   * valid until the next iteration, which frees its slots: retain() a packet to keep it.
   * The event loop gets a turn between bursts, so timers and an abort are seen. Ending
   * the loop in any way (end of file, break, throw, abort) frees the batch held and
   * closes the reader, as Node's streams do. Throws EINVAL without an arena, ENOSLOT
   * when the arena has no slot for the next packet (packets retained and never
   * released), EPCAP for damage (after the packets before it), and Node's AbortError
   * (name 'AbortError', code 'ABORT_ERR') once `signal` is aborted.
   */
  async *bursts(options: BurstOptions = {}): AsyncGenerator<PacketBatch, void, undefined> {
    const signal = options.signal ?? this.burstDefaults.signal;
    const size = options.burstSize ?? this.burstDefaults.burstSize ?? 256;
    const arena = this.arena;
    if (arena === null) throw new NetpdError('EINVAL', `iterating ${this.path} needs an arena: PcapReader.open(path, { arena })`);
    if (!Number.isInteger(size) || size < 1 || size > 65536) throw new NetpdError('EINVAL', `burstSize must be an integer in 1..65536, got ${size}`);
    if (this.closed) throw new NetpdError('ECLOSED', `the reader of ${this.path} is closed`);
    const vec = arena.burstVector(size);
    const batch = new PacketBatch(arena, vec);
    try {
      for (;;) {
        checkAborted(signal);
        const k = this.readBurst(vec, size);
        if (k === 0) {
          if (this.done) return;
          throw new NetpdError('ENOSLOT', `the arena has no free slot for the next packet of ${this.path} (packet ${this.delivered + 1}): all ${arena.slotCount} slots are held; release() the packets you retain(), or give the reader a larger arena`);
        }
        batch.length = k;
        yield batch;
        arena.freeBurst(vec, k);
        batch.length = 0;
        await nextTurn();
      }
    } finally {
      if (batch.length > 0) arena.freeBurst(vec, batch.length);
      arena.unreserve(vec.byteOffset, vec.byteLength);
      this.close();
    }
  }

  /** bursts() with the options given to open(). */
  [Symbol.asyncIterator](): AsyncGenerator<PacketBatch, void, undefined> {
    return this.bursts();
  }

  /** close(), for `await using reader = PcapReader.open(...)`. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }

  /** Closes the file. Idempotent. The reader holds no arena slots. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
    this.fd = -1;
  }

  // ---- scanning ----------------------------------------------------------------------

  /** Parses up to `max` packet records into the record table; returns how many. */
  private scan(max: number): number {
    if (this.failure !== null) throw this.failure;
    if (this.closed) throw new NetpdError('EINVAL', `the reader of ${this.path} is closed`);
    if (this.recPos.length < max) this.growTable(max);
    const ng = this.format === 'pcapng';
    let n = 0;
    let p = this.cursor;
    this.hitEnd = false;
    this.pending = 0;
    while (n < max) {
      let kind: number;
      try {
        kind = ng ? this.parseBlock(p, n) : this.parseRecord(p, n);
      } catch (err) {
        // Deliver the records before the damage; the next call meets it with n === 0.
        if (n > 0 && err instanceof NetpdError && err.code === 'EPCAP') break;
        if (err instanceof NetpdError) this.failure = err;
        throw err;
      }
      if (kind === KIND_PACKET) {
        this.recEnd[n] = this.nextPos;
        n++;
        this.pending = n;
      } else if (kind === KIND_META) {
        if (n === 0) this.cursor = this.nextPos;
      } else {
        if (kind === KIND_END) this.hitEnd = true;
        break;
      }
      p = this.nextPos;
    }
    this.pending = 0;
    return n;
  }

  private growTable(size: number): void {
    this.recPos = new Float64Array(size);
    this.recEnd = new Float64Array(size);
    this.recSec = new Float64Array(size);
    this.recNsec = new Float64Array(size);
    this.recCap = new Uint32Array(size);
    this.recWire = new Uint32Array(size);
    this.recIf = new Uint32Array(size);
  }

  private store(n: number, pos: number, cap: number, wire: number, sec: number, nsec: number, ifIndex: number): void {
    this.recPos[n] = pos;
    this.recCap[n] = cap;
    this.recWire[n] = wire;
    this.recSec[n] = sec;
    this.recNsec[n] = nsec;
    this.recIf[n] = ifIndex;
  }

  // ---- classic pcap --------------------------------------------------------------------

  private readPcapHeader(): void {
    if (this.fill(0, PCAP_FILE_HEADER_LEN) !== FILL_OK) {
      throw this.bad(`truncated pcap file header (${this.avail(0)} of ${PCAP_FILE_HEADER_LEN} bytes)`, 0);
    }
    this.versionMajor = this.u16(4);
    this.versionMinor = this.u16(6);
    if (this.versionMajor < 2) {
      throw this.bad(`unsupported pcap version ${this.versionMajor}.${this.versionMinor}`, 4);
    }
    if (this.versionMajor === 2) this.lenSwap = this.versionMinor < 3 ? 1 : this.versionMinor === 3 ? 2 : 0;
    const snaplen = this.u32(16);
    const field = this.u32(20);
    const linkType = field & 0xffff;
    const fcsLength = (field & 0x04000000) !== 0 ? ((field >>> 28) & 0xf) * 2 : -1;
    const tsresol = this.nano ? 1e9 : 1e6;
    this.addInterface({ linkType, snaplen, tsresol, tsoffset: 0, fcsLength, section: 0, localId: 0 },
      { mode: TS_CLASSIC, param: 0, mul: this.nano ? 1 : 1000, big: 0n, offset: 0, maxCapLen: maxCapLenFor(linkType), snaplen });
    this.cursor = PCAP_FILE_HEADER_LEN;
  }

  private parseRecord(p: number, n: number): number {
    const f = this.fill(p, PCAP_RECORD_HEADER_LEN);
    if (f === FILL_FULL) return KIND_STOP;
    if (f === FILL_SHORT) {
      const have = this.avail(p);
      if (have === 0) return KIND_END;
      throw this.bad(`truncated record header (${have} of ${PCAP_RECORD_HEADER_LEN} bytes)`, p);
    }
    const i = p - this.bufOff;
    let sec = this.u32(i);
    const frac = this.u32(i + 4);
    let cap = this.u32(i + 8);
    let wire = this.u32(i + 12);
    if (this.lenSwap === 1 || (this.lenSwap === 2 && cap > wire)) {
      const t = cap;
      cap = wire;
      wire = t;
    }
    const rule = this.rules[0];
    if (cap > rule.maxCapLen) {
      throw this.bad(`record captured length ${cap} is larger than the maximum ${rule.maxCapLen}`, p + 8);
    }
    const data = p + PCAP_RECORD_HEADER_LEN;
    const g = this.fill(data, cap);
    if (g === FILL_FULL) return KIND_STOP;
    if (g === FILL_SHORT) throw this.bad(`truncated record data (${this.avail(data)} of ${cap} bytes)`, data);
    let nsec = frac * rule.mul;
    if (nsec >= 1e9) {
      // Out-of-range fraction (a damaged or odd writer): carry it into the seconds.
      const carry = Math.floor(nsec / 1e9);
      sec += carry;
      nsec -= carry * 1e9;
    }
    this.store(n, data, cap, wire, sec, nsec, 0);
    this.nextPos = data + cap;
    return KIND_PACKET;
  }

  // ---- pcapng --------------------------------------------------------------------------

  /** Processes the first SHB and the metadata blocks before the first packet block. */
  private readPcapngHeader(): void {
    let first = true;
    for (;;) {
      const p = this.cursor;
      if (this.fill(p, 8) !== FILL_OK) {
        if (first) throw this.bad(`truncated section header block (${this.avail(p)} of 8 bytes)`, p);
        return;
      }
      const type = this.u32(p - this.bufOff);
      if (type === PCAPNG_EPB || type === PCAPNG_SPB || type === PCAPNG_PB) return;
      const kind = this.parseBlock(p, 0);
      if (kind !== KIND_META) return;
      this.cursor = this.nextPos;
      first = false;
    }
  }

  private parseBlock(p: number, n: number): number {
    const f = this.fill(p, 8);
    if (f === FILL_FULL) return KIND_STOP;
    if (f === FILL_SHORT) {
      const have = this.avail(p);
      if (have === 0) return KIND_END;
      throw this.bad(`truncated block header (${have} of 8 bytes)`, p);
    }
    const i = p - this.bufOff;
    const type = this.u32(i);
    if (type === PCAPNG_SHB) return n > 0 ? KIND_STOP : this.parseSectionHeader(p);
    const len = this.u32(i + 4);
    this.checkBlockLength(len, PCAPNG_MIN_BLOCK, 'block', p);
    switch (type) {
      case PCAPNG_EPB: return this.parsePacketBlock(p, len, n, true);
      case PCAPNG_PB: return this.parsePacketBlock(p, len, n, false);
      case PCAPNG_SPB: return this.parseSimplePacketBlock(p, len, n);
      case PCAPNG_IDB: return n > 0 ? KIND_STOP : this.parseInterfaceBlock(p, len);
      default: return this.skipBlock(p, len, n);
    }
  }

  private checkBlockLength(len: number, min: number, what: string, p: number): void {
    if (len < min) throw this.bad(`${what} total length ${len} is smaller than the minimum ${min}`, p + 4);
    if ((len & 3) !== 0) throw this.bad(`${what} total length ${len} is not a multiple of 4`, p + 4);
    if (len > PCAPNG_MAX_BLOCK) throw this.bad(`${what} total length ${len} is larger than the maximum ${PCAPNG_MAX_BLOCK}`, p + 4);
  }

  /** Makes the whole block [p, p + len) readable; KIND_STOP or an error if it cannot. */
  private fillBlock(p: number, len: number, what: string): number {
    const f = this.fill(p, len);
    if (f === FILL_OK) return KIND_META;
    if (f === FILL_FULL) return KIND_STOP;
    throw this.bad(`truncated ${what} (${this.avail(p)} of ${len} bytes)`, p);
  }

  private checkTrailer(p: number, len: number, what: string): void {
    const t = this.u32(p + len - 4 - this.bufOff);
    if (t !== len) throw this.bad(`${what} trailing length ${t} does not match its leading length ${len}`, p + len - 4);
  }

  private parseSectionHeader(p: number): number {
    if (this.fill(p, 12) !== FILL_OK) throw this.bad(`truncated section header block (${this.avail(p)} of 12 bytes)`, p);
    let i = p - this.bufOff;
    const bom = this.buf.readUInt32LE(i + 8);
    let le: boolean;
    if (bom === PCAPNG_BYTE_ORDER_MAGIC) le = true;
    else if (bom === PCAPNG_BYTE_ORDER_MAGIC_SWAPPED) le = false;
    else throw this.bad(`section header block has an unknown byte-order magic 0x${hex32(this.buf.readUInt32BE(i + 8))}`, p + 8);
    const len = le ? this.buf.readUInt32LE(i + 4) : this.buf.readUInt32BE(i + 4);
    this.checkBlockLength(len, PCAPNG_MIN_SHB, 'section header block', p);
    if (this.fillBlock(p, len, 'section header block') === KIND_STOP) return KIND_STOP;
    i = p - this.bufOff;
    this.le = le;
    const major = this.u16(i + 12);
    const minor = this.u16(i + 14);
    if (major !== 1 || (minor !== 0 && minor !== 2)) {
      throw this.bad(`unsupported pcapng version ${major}.${minor} (1.0 and 1.2 are read)`, p + 12);
    }
    this.checkTrailer(p, len, 'section header block');
    this.versionMajor = major;
    this.versionMinor = minor;
    this.sectionCount++;
    this.sectionIfBase = this.ifaces.length;
    this.sectionIfCount = 0;
    this.nextPos = p + len;
    return KIND_META;
  }

  private parseInterfaceBlock(p: number, len: number): number {
    const what = 'interface description block';
    if (len < PCAPNG_MIN_IDB) throw this.bad(`${what} total length ${len} is smaller than the minimum ${PCAPNG_MIN_IDB}`, p + 4);
    if (this.fillBlock(p, len, what) === KIND_STOP) return KIND_STOP;
    this.checkTrailer(p, len, what);
    const i = p - this.bufOff;
    const linkType = this.u16(i + 8);
    const snaplen = this.u32(i + 12);
    let name: string | undefined;
    let tsresolByte = 6;
    let tsoffset = 0;
    let fcsLength = -1;
    // Options: code u16, length u16, value padded to 4 bytes; opt_endofopt ends the list.
    let q = i + 16;
    const end = i + len - 4;
    while (q < end) {
      if (q + 4 > end) throw this.bad(`${what} has ${end - q} bytes left, too few for an option header`, this.bufOff + q);
      const code = this.u16(q);
      const olen = this.u16(q + 2);
      q += 4;
      if (code === OPT_ENDOFOPT) break;
      const padded = (olen + 3) & ~3;
      if (q + padded > end) {
        throw this.bad(`${what} option ${code} of ${olen} bytes runs past the end of the block`, this.bufOff + q - 4);
      }
      if (code === OPT_IF_NAME) {
        let e = q + olen;
        while (e > q && this.buf[e - 1] === 0) e--;
        name = this.buf.toString('utf8', q, e);
      } else if (code === OPT_IF_TSRESOL && olen === 1) {
        tsresolByte = this.buf[q];
      } else if (code === OPT_IF_TSOFFSET && olen === 8) {
        tsoffset = this.le
          ? this.buf.readInt32LE(q + 4) * TWO32 + this.buf.readUInt32LE(q)
          : this.buf.readInt32BE(q) * TWO32 + this.buf.readUInt32BE(q + 4);
      } else if (code === OPT_IF_FCSLEN && olen === 1) {
        fcsLength = this.buf[q];
      }
      q += padded;
    }
    const rule: TsRule = { mode: TS_POW10, param: 1e6, mul: 1000, big: 0n, offset: tsoffset, maxCapLen: maxCapLenFor(linkType), snaplen };
    let tsresol: number;
    const k = tsresolByte & 0x7f;
    if ((tsresolByte & 0x80) !== 0) {
      if (k > 63) throw this.bad(`${what} if_tsresol 2^-${k} is finer than 2^-63`, p);
      tsresol = 2 ** k;
      if (k <= 32) {
        rule.mode = TS_POW2;
        rule.param = k;
      } else {
        rule.mode = TS_BIGINT;
        rule.big = 1n << BigInt(k);
      }
    } else {
      if (k > 19) throw this.bad(`${what} if_tsresol 10^-${k} is finer than 10^-19`, p);
      tsresol = 10 ** k;
      if (k <= 9) {
        rule.param = tsresol;
        rule.mul = 10 ** (9 - k);
      } else {
        rule.mode = TS_BIGINT;
        rule.big = 10n ** BigInt(k);
      }
    }
    const iface: PcapInterface = {
      linkType, snaplen, tsresol, tsoffset, fcsLength, section: this.sectionCount - 1, localId: this.sectionIfCount,
      ...(name !== undefined ? { name } : {}),
    };
    this.addInterface(iface, rule);
    this.sectionIfCount++;
    this.nextPos = p + len;
    return KIND_META;
  }

  private addInterface(iface: PcapInterface, rule: TsRule): void {
    if (this.ifaces.length > 0 && iface.linkType !== this.ifaces[0].linkType) this.mixed = true;
    this.ifaces.push(Object.freeze(iface));
    this.rules.push(rule);
  }

  private parsePacketBlock(p: number, len: number, n: number, enhanced: boolean): number {
    const what = enhanced ? 'enhanced packet block' : 'packet block';
    const min = enhanced ? PCAPNG_MIN_EPB : PCAPNG_MIN_PB;
    if (len < min) throw this.bad(`${what} total length ${len} is smaller than the minimum ${min}`, p + 4);
    const f = this.fill(p, 28);
    if (f === FILL_FULL) return KIND_STOP;
    if (f === FILL_SHORT) throw this.bad(`truncated ${what} (${this.avail(p)} of ${len} bytes)`, p);
    let i = p - this.bufOff;
    const id = enhanced ? this.u32(i + 8) : this.u16(i + 8);
    const hi = this.u32(i + 12);
    const lo = this.u32(i + 16);
    const cap = this.u32(i + 20);
    const wire = this.u32(i + 24);
    if (id >= this.sectionIfCount) {
      throw this.bad(`${what} names interface ${id}, but its section declares ${this.sectionIfCount} interface(s)`, p + 8);
    }
    if (cap + ((4 - (cap & 3)) & 3) > len - min) {
      throw this.bad(`${what} captured length ${cap} does not fit in its total length ${len}`, p + 20);
    }
    const ifIndex = this.sectionIfBase + id;
    const rule = this.rules[ifIndex];
    if (cap > rule.maxCapLen) {
      throw this.bad(`${what} captured length ${cap} is larger than the maximum ${rule.maxCapLen}`, p + 20);
    }
    if (this.fillBlock(p, len, what) === KIND_STOP) return KIND_STOP;
    this.checkTrailer(p, len, what);
    this.convertTimestamp(rule, hi, lo);
    this.store(n, p + 28, cap, wire, this.tsSec, this.tsNsec, ifIndex);
    this.nextPos = p + len;
    return KIND_PACKET;
  }

  private parseSimplePacketBlock(p: number, len: number, n: number): number {
    const what = 'simple packet block';
    if (len < PCAPNG_MIN_SPB) throw this.bad(`${what} total length ${len} is smaller than the minimum ${PCAPNG_MIN_SPB}`, p + 4);
    if (this.sectionIfCount === 0) throw this.bad(`${what} before any interface description block in its section`, p);
    if (this.fillBlock(p, len, what) === KIND_STOP) return KIND_STOP;
    this.checkTrailer(p, len, what);
    const i = p - this.bufOff;
    const wire = this.u32(i + 8);
    const rule = this.rules[this.sectionIfBase];
    // Captured length = min(original length, snaplen (0: none), room in the block).
    let cap = wire;
    if (rule.snaplen !== 0 && cap > rule.snaplen) cap = rule.snaplen;
    if (cap > len - PCAPNG_MIN_SPB) cap = len - PCAPNG_MIN_SPB;
    if (cap > rule.maxCapLen) {
      throw this.bad(`${what} captured length ${cap} is larger than the maximum ${rule.maxCapLen}`, p + 8);
    }
    this.store(n, p + 12, cap, wire, 0, 0, this.sectionIfBase);
    this.nextPos = p + len;
    return KIND_PACKET;
  }

  /** Blocks with nothing for us (NRB, ISB, DSB, custom, unknown): checked and skipped. */
  private skipBlock(p: number, len: number, n: number): number {
    // Alone in the burst, the block may be skipped without buffering it whole.
    if (n === 0) this.cursor = p + len - 4;
    const f = this.fill(p + len - 4, 4);
    if (f === FILL_FULL) return KIND_STOP;
    if (f === FILL_SHORT) throw this.bad(`truncated block (file ends inside a block of ${len} bytes)`, p);
    this.checkTrailer(p, len, 'block');
    this.nextPos = p + len;
    return KIND_META;
  }

  /** Sets tsSec/tsNsec from a 64-bit pcapng timestamp (hi:lo) under an interface's rule. */
  private convertTimestamp(rule: TsRule, hi: number, lo: number): void {
    let sec: number;
    let nsec: number;
    if (rule.mode === TS_POW10) {
      sec = divmod64(hi, lo, rule.param);
      nsec = remainder * rule.mul;
    } else if (rule.mode === TS_POW2) {
      const k = rule.param;
      let frac: number;
      if (k === 32) {
        sec = hi;
        frac = lo;
      } else {
        const unit = 2 ** k;
        const whole = Math.floor(lo / unit);
        sec = hi * 2 ** (32 - k) + whole;
        frac = lo - whole * unit;
      }
      // floor(frac * 1e9 / 2^k), exact: frac * 1953125 < 2^53 for k <= 32.
      nsec = k <= 9 ? Math.floor((frac * 1e9) / 2 ** k) : Math.floor((frac * 1953125) / 2 ** (k - 9));
    } else {
      const ts = (BigInt(hi) << 32n) | BigInt(lo);
      sec = Number(ts / rule.big);
      nsec = Number(((ts % rule.big) * 1000000000n) / rule.big);
    }
    this.tsSec = sec + rule.offset;
    this.tsNsec = nsec;
  }

  // ---- buffer --------------------------------------------------------------------------

  /**
   * Makes the file's bytes [off, off + n) readable in buf. Keeps everything from the
   * cursor on (records scanned but not delivered stay valid). FILL_SHORT if the file ends
   * first; FILL_FULL if that would grow the buffer while records are pending.
   */
  private fill(off: number, n: number): number {
    const end = off + n;
    if (end <= this.bufOff + this.bufLen) return FILL_OK;
    const keep = this.cursor;
    const have = this.bufOff + this.bufLen;
    if (keep >= have) {
      // Nothing buffered is needed any more: restart the buffer at the cursor.
      if (!this.seekable) {
        let at = have;
        while (at < keep) {
          const r = this.read(0, Math.min(this.buf.length, keep - at), null);
          if (r === 0) {
            this.bufOff = at;
            this.bufLen = 0;
            return FILL_SHORT;
          }
          at += r;
        }
      }
      if (this.buf.length > this.chunkSize && end - keep <= this.chunkSize) {
        this.buf = Buffer.allocUnsafe(this.chunkSize); // give back memory a huge record took
      }
      this.bufOff = keep;
      this.bufLen = 0;
    } else if (end - this.bufOff > this.buf.length && keep > this.bufOff) {
      // Slide what is still needed to the front.
      const from = keep - this.bufOff;
      this.buf.copy(this.buf, 0, from, this.bufLen);
      this.bufLen -= from;
      this.bufOff = keep;
    }
    while (this.bufOff + this.bufLen < end) {
      if (this.bufLen === this.buf.length) {
        if (this.pending > 0) return FILL_FULL;
        // One record larger than the buffer: grow, at most doubling per read so a bogus
        // length costs no more memory than the file really has.
        const size = Math.min(this.buf.length * 2, end - this.bufOff);
        const grown = Buffer.allocUnsafe(size);
        this.buf.copy(grown, 0, 0, this.bufLen);
        this.buf = grown;
      }
      const r = this.read(this.bufLen, this.buf.length - this.bufLen, this.bufOff + this.bufLen);
      if (r === 0) return FILL_SHORT;
      this.bufLen += r;
    }
    return FILL_OK;
  }

  private read(at: number, len: number, position: number | null): number {
    for (;;) {
      try {
        return readSync(this.fd, this.buf, at, len, this.seekable ? position : null);
      } catch (cause) {
        // A non-blocking pipe or socket with nothing to read yet: wait a moment, retry.
        if ((cause as NodeJS.ErrnoException).code === 'EAGAIN') {
          Atomics.wait(PAUSE, 0, 0, 1);
          continue;
        }
        // (A directory opens, and fails here, at the header, with EISDIR.)
        throw fileError(cause, this.path, 'read');
      }
    }
  }

  /** Bytes of the file available from offset p (meaningful after a FILL_SHORT). */
  private avail(p: number): number {
    const a = this.bufOff + this.bufLen - p;
    return a > 0 ? a : 0;
  }

  private u16(i: number): number {
    return this.le ? this.buf.readUInt16LE(i) : this.buf.readUInt16BE(i);
  }

  private u32(i: number): number {
    return this.le ? this.buf.readUInt32LE(i) : this.buf.readUInt32BE(i);
  }

  private bad(problem: string, offset: number): NetpdError {
    return new NetpdError('EPCAP', `${problem} at byte ${offset} of ${this.path}`, { details: { offset, path: this.path } });
  }
}

function hex32(v: number): string {
  return v.toString(16).padStart(8, '0');
}

/** The captured-length limit for standard link types (re-exported for callers sizing buffers). */
export const PCAP_MAX_CAPLEN = MAX_CAPLEN_STANDARD;
