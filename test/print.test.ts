// The packet printer behind `netpd filter -v` (bindings/print) prints, for every packet of
// the repository's captures, the first line tcpdump 4.99 prints with `tcpdump -n -r FILE`
// (TZ=UTC, and --nano / local time where the capture entry says so). tcpdump's lines are
// stored by test/fixtures/print/tcpdump-lines.mjs; where tcpdump is installed the test
// also re-runs it.
//
// netpd does not port every tcpdump printer. The packet kinds it deliberately prints in
// tcpdump's shape for an undecoded payload are listed in KNOWN_DIFFERENCES with their exact
// counts over all the captures: any other difference, or a change in a count, fails.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { NetpdError } from '../bindings/errors.js';
import { PcapReader } from '../bindings/pcap/index.js';
import { PRINTABLE_LINK_TYPES, PacketPrinter, formatPacket } from '../bindings/print/index.js';
import {
  CAPTURES, FIXTURE, ROOT, sha256, tcpdumpLines, tcpdumpVersion, type PrintCapture, type StoredCapture,
} from './fixtures/print/tcpdump-lines.mjs';

const stored = JSON.parse(readFileSync(FIXTURE, 'utf8')) as { tcpdump: string; captures: StoredCapture[] };
const tcpdump = tcpdumpVersion();
if (!tcpdump) console.log('print: tcpdump is not installed; its lines are not re-derived (the stored ones still run)');

interface KnownDifference {
  kind: string;
  /** The line netpd prints for such a packet (tcpdump's form for a payload it cannot decode). */
  ours: RegExp;
  /** How many packets of the captures below are of this kind. */
  count: number;
}

const KNOWN_DIFFERENCES: readonly KnownDifference[] = [
  { kind: 'other ethertypes tcpdump decodes: IPX, AppleTalk, AARP, Loopback, MACsec, DECnet, PTP',
    ours: /, ethertype (IPX|Appletalk|Appletalk ARP|Loopback|802\.1AE MACsec|DN|PTP) \(0x[0-9a-f]{4}\), length \d+: $/, count: 14 },
  { kind: '802.3/LLC frames other than IP, SNAP and STP BPDUs: LLC I/S/U frames, NetBEUI, IPX, OSI, CDP, other SNAP OUIs',
    ours: / 802\.3, length \d+: $/, count: 72 },
  { kind: 'IP protocols tcpdump decodes (SCTP, ESP, AH, OSPF, VRRP; GRE v1 and source routes; DVMRP and PIMv1 in IGMP) and IPv6 routing headers',
    ours: / ip-proto-\d+ \d+$/, count: 57 },
  { kind: 'UDP ports tcpdump decodes besides DNS, mDNS, DHCP, NTP, DHCPv6 and Geneve: RIP, SNMP, syslog, VXLAN, ...',
    ours: /: UDP, (bad )?length \d+( > \d+)?$/, count: 4 },
];

function readLines(capture: PrintCapture, printer: PacketPrinter): string[] {
  const savedTz = process.env.TZ;
  process.env.TZ = capture.tz;
  const reader = PcapReader.open(join(ROOT, capture.file));
  try {
    const out: string[] = [];
    for (const p of reader.packets()) {
      out.push(printer.format(p.data, p.capLen, p.wireLen, p.sec, p.nsec, reader.interfaces[p.ifIndex].linkType));
    }
    return out;
  } finally {
    reader.close();
    process.env.TZ = savedTz;
  }
}

// tcpdump names a LINUX_SLL2 packet's interface by the local index; the fixtures were made
// on Linux, where index 1 is always "lo" and 424242 nobody's. Stated here so the test does
// not depend on the machine it runs on (the default lookup is tested below).
const linuxInterfaces = (ifIndex: number): string | undefined => (ifIndex === 1 ? 'lo' : undefined);

function ourLines(capture: PrintCapture): string[] {
  return readLines(capture, new PacketPrinter({ utc: capture.tz === 'UTC', nanosecond: capture.nano, interfaceName: linuxInterfaces }));
}

interface Mismatch { file: string; packet: number; tcpdump: string; ours: string }

function mismatches(capture: StoredCapture): Mismatch[] {
  const ours = ourLines(capture);
  expect(ours.length).toBe(capture.lines.length);
  const out: Mismatch[] = [];
  ours.forEach((line, i) => {
    if (line !== capture.lines[i]) out.push({ file: capture.file, packet: i + 1, tcpdump: capture.lines[i], ours: line });
  });
  return out;
}

const label = (c: PrintCapture): string => `${c.file}${c.nano ? ' --nano' : ''}${c.tz !== 'UTC' ? ` TZ=${c.tz}` : ''}`;

describe('the printer prints what tcpdump -n prints', () => {
  it('the stored lines cover the listed captures, and belong to those files', () => {
    expect(stored.captures.map(label)).toEqual(CAPTURES.map(label));
    for (const c of stored.captures) expect(sha256(c.file), c.file).toBe(c.sha256);
  });

  it.skipIf(!tcpdump)('tcpdump, run now, still prints the stored lines', () => {
    for (const c of stored.captures) expect(tcpdumpLines(c), label(c)).toEqual(c.lines);
  });

  it('the captures made for the printer (every kind, every link type, cut, nano, local time) match line for line', () => {
    for (const c of stored.captures.filter((s) => s.file.startsWith('test/fixtures/print/') && !s.file.includes('mutated'))) {
      expect(mismatches(c), label(c)).toEqual([]);
    }
  });

  it('every other capture matches line for line except the known, counted kinds', () => {
    const counts = new Map(KNOWN_DIFFERENCES.map((k) => [k.kind, 0]));
    const unexplained: Mismatch[] = [];
    for (const c of stored.captures) {
      for (const m of mismatches(c)) {
        const known = KNOWN_DIFFERENCES.find((k) => k.ours.test(m.ours));
        if (known) counts.set(known.kind, (counts.get(known.kind) ?? 0) + 1);
        else unexplained.push(m);
      }
    }
    expect(unexplained).toEqual([]);
    expect(Object.fromEntries(counts)).toEqual(Object.fromEntries(KNOWN_DIFFERENCES.map((k) => [k.kind, k.count])));
  });
});

/** The packets of a capture, with the link type of each. */
function packetsOf(file: string): { data: Uint8Array; wireLen: number; linkType: number }[] {
  const reader = PcapReader.open(join(ROOT, file));
  try {
    return [...reader.packets()].map((p) => ({ data: p.data, wireLen: p.wireLen, linkType: reader.interfaces[p.ifIndex].linkType }));
  } finally {
    reader.close();
  }
}

describe('formatPacket and PacketPrinter', () => {
  const ether = packetsOf('test/fixtures/print/print-ether.pcap');
  // Packets 3..11 of print-ether.pcap are one TCP connection (see make-print-captures.py).
  const connection = ether.slice(2, 11);

  it('a PacketPrinter numbers a connection relative to its first ACK, as tcpdump does; formatPacket prints absolute numbers', () => {
    const printer = new PacketPrinter({ utc: true });
    const stateful = connection.map((p) => printer.format(p.data, p.data.length, p.wireLen, 0, 0, 1));
    expect(stateful[3]).toContain('Flags [P.], seq 1:5, ack 1, win 502, length 4');
    const oneOff = connection.map((p) => formatPacket(p.data, p.data.length, p.wireLen, 0, 0, 1, { utc: true }));
    expect(oneOff[3]).toContain('Flags [P.], seq 1000001:1000005, ack 3000000001, win 502, length 4');
    // Packets without ACK (the SYN) print the same either way.
    expect(oneOff[0]).toBe(stateful[0]);
  });

  it('timestamps: UTC or local time, six digits or nine', () => {
    const p = ether[0];
    const savedTz = process.env.TZ;
    process.env.TZ = 'Asia/Kolkata';
    try {
      expect(formatPacket(p.data, p.data.length, p.wireLen, 1700000000, 123456789, 1, { utc: true })).toMatch(/^22:13:20\.123456 ARP/);
      expect(formatPacket(p.data, p.data.length, p.wireLen, 1700000000, 123456789, 1)).toMatch(/^03:43:20\.123456 ARP/);
      expect(formatPacket(p.data, p.data.length, p.wireLen, 1700000000, 5, 1, { utc: true, nanosecond: true })).toMatch(/^22:13:20\.000000005 ARP/);
    } finally {
      process.env.TZ = savedTz;
    }
  });

  it.skipIf(!existsSync('/sys/class/net/lo/ifindex'))('LINUX_SLL2 names the interface as the local machine does (if_indextoname)', () => {
    const sll2 = packetsOf('test/fixtures/print/print-sll2.pcap');
    const index = Number(readFileSync('/sys/class/net/lo/ifindex', 'utf8'));
    const bytes = Uint8Array.from(sll2[1].data);
    new DataView(bytes.buffer).setUint32(4, index);
    expect(formatPacket(bytes, bytes.length, sll2[1].wireLen, 0, 0, 276, { utc: true })).toMatch(/^00:00:00\.000000 lo    B   ARP, Reply/);
    new DataView(bytes.buffer).setUint32(4, 0x7fffffff);
    expect(formatPacket(bytes, bytes.length, sll2[1].wireLen, 0, 0, 276, { utc: true })).toMatch(/^00:00:00\.000000 \?     B   ARP/);
  });

  it('impossible arguments are EINVAL and unknown link types ENOTSUP, naming them', () => {
    const p = ether[0];
    const code = (f: () => unknown): string => {
      try {
        f();
      } catch (err) {
        expect(err).toBeInstanceOf(NetpdError);
        return `${(err as NetpdError).code}: ${(err as NetpdError).message}`;
      }
      return 'no error';
    };
    expect(code(() => formatPacket(p.data, p.data.length + 1, p.wireLen, 0, 0, 1))).toMatch(/^EINVAL: .*capLen 43/);
    expect(code(() => formatPacket(p.data, -1, p.wireLen, 0, 0, 1))).toMatch(/^EINVAL: .*capLen .*-1/);
    expect(code(() => formatPacket(p.data, p.data.length, p.wireLen, 0, 0, 105))).toMatch(/^ENOTSUP: .*link type 105/);
  });
});

describe('the printer never throws on packet content', () => {
  const samples = [
    ...packetsOf('test/fixtures/print/print-ether.pcap'),
    ...packetsOf('test/fixtures/print/print-sll2.pcap'),
    ...packetsOf('test/fixtures/print/print-null.pcap'),
    ...packetsOf('test/fixtures/captures/scapy-l2.pcap'),
    ...packetsOf('test/fixtures/captures/veth-sockets.pcap'),
  ];

  it('random bytes on every link type, any capture and wire length', () => {
    fc.assert(fc.property(
      fc.uint8Array({ maxLength: 200 }), fc.constantFrom(...PRINTABLE_LINK_TYPES), fc.nat(300), fc.nat(100),
      (bytes, linkType, extra, cut) => {
        const capLen = Math.min(cut, bytes.length);
        const wireLen = extra % 3 === 0 ? extra : capLen + extra; // some below capLen: an invalid record header
        const line = new PacketPrinter({ utc: true }).format(bytes, capLen, wireLen, 0, 0, linkType);
        expect(typeof line).toBe('string');
      }), { numRuns: 3000 });
  });

  it('real packets cut short, with bytes overwritten, through one printer (TCP state included)', () => {
    const printer = new PacketPrinter({ utc: true });
    fc.assert(fc.property(
      fc.constantFrom(...samples), fc.nat(), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }),
      (p, cut, writes) => {
        const bytes = Uint8Array.from(p.data);
        for (const [at, v] of writes) if (bytes.length) bytes[at % bytes.length] = v;
        const capLen = bytes.length ? cut % (bytes.length + 1) : 0;
        expect(typeof printer.format(bytes, capLen, p.wireLen, 0, 0, p.linkType)).toBe('string');
      }), { numRuns: 5000 });
  });
});
