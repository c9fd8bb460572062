// The packet printer behind `netpd filter -v`: one line per packet as `tcpdump -n -r FILE`
// (tcpdump 4.99, default verbosity, no -e) prints it.
//
// It is a port of the parts of tcpdump's printers that matter for a dispatcher's
// traffic, not a new dissector: the same order of checks, the same words, the same
// truncation markers, so that a user who knows tcpdump's lines reads netpd's. Each
// protocol lives in its own file (link, arp, stp, mpls, ppp, ip, igmp, icmp, tcp, udp,
// dns), each following the tcpdump printer it names; dissection.ts holds the per-packet
// state, including the "read past the capture" escape that tcpdump does with longjmp.
//
// Decoded as tcpdump decodes them: Ethernet (802.1Q/QinQ tags, LLC with IP or SNAP, STP
// BPDUs), LINUX_SLL, LINUX_SLL2, RAW/IPV4/IPV6, NULL, LOOP; ARP/RARP, MPLS, PPPoE and PPP;
// IPv4 (fragments, IP-in-IP), IPv6 (hop-by-hop, destination options, fragment headers);
// TCP (flags, relative seq/ack, options, and the HTTP/FTP/SMTP/RTSP/whois first line,
// SSH banner, DNS over TCP), UDP (DNS, mDNS, BOOTP/DHCP, NTP), ICMP, ICMPv6 (echo,
// errors, ND, MLD), IGMP.
//
// Two ways to print:
//  - PacketPrinter, one per run over a capture: it keeps tcpdump's per-connection TCP
//    state, so relative sequence numbers come out as tcpdump prints them (the first
//    packet of a connection absolute, later ones relative to it).
//  - formatPacket, a one-off: a fresh PacketPrinter per call, so every TCP packet with
//    ACK set prints absolute numbers, as the first packet of a connection does in tcpdump.
//
// Where netpd deliberately prints something else (protocols tcpdump decodes and this
// port does not: LLC I/S/U frames, LLDP, IPX, AppleTalk, GRE, OSPF, SCTP, ESP/AH, IPv6
// routing headers, VXLAN/Geneve, DHCPv6, SNMP, ...), the line has tcpdump's shape for a
// payload it cannot decode; test/print.test.ts lists and counts those kinds. tcpdump's
// hex dumps of undecoded payloads (its continuation lines) are not printed.
//
// Printing is control-plane work (off the hot path); it allocates strings freely. It
// never throws on packet content: whatever the bytes, a line comes back.

import { readFileSync, readdirSync } from 'node:fs';
import { NetpdError } from '../errors.js';
import { Dissection, TRUNCATED, pad } from './dissection.js';
import { etherPrint, nullPrint, rawPrint, sllPrint } from './link.js';
import { TcpFlows } from './tcp.js';

export interface PrintOptions {
  /** Timestamps in UTC (true) or in the local time zone, tcpdump's habit (false, the default). */
  utc?: boolean;
  /** Nine fraction digits, as `tcpdump --nano` prints them (default: six, microseconds, truncated). */
  nanosecond?: boolean;
  /**
   * The name of a network interface by its index, for LINUX_SLL2 lines; default: the
   * local machine's interfaces, as tcpdump's if_indextoname ("?" when none has it).
   */
  interfaceName?: (ifIndex: number) => string | undefined;
}

/** The link types the printer understands (LINKTYPE_* values). */
export const PRINTABLE_LINK_TYPES: readonly number[] = [1, 113, 276, 101, 228, 229, 0, 108];

/** tcpdump's MAXIMUM_SNAPLEN: a record claiming more is printed as an invalid header. */
const MAXIMUM_SNAPLEN = 262144;

let localInterfaces: Map<number, string> | undefined;

/** if_indextoname over /sys/class/net (Linux); an empty table elsewhere. */
function localInterfaceName(ifIndex: number): string | undefined {
  if (!localInterfaces) {
    localInterfaces = new Map();
    try {
      for (const name of readdirSync('/sys/class/net')) {
        const index = Number(readFileSync(`/sys/class/net/${name}/ifindex`, 'utf8').trim());
        if (Number.isInteger(index)) localInterfaces.set(index, name);
      }
    } catch {
      // No sysfs: every index prints as "?", as tcpdump does for an unknown one.
    }
  }
  return localInterfaces.get(ifIndex);
}

/** ts_print's default format: HH:MM:SS.ffffff (or .fffffffff), then a space. */
function timestamp(sec: number, nsec: number, utc: boolean, nano: boolean): string {
  const date = new Date(sec * 1000);
  const h = utc ? date.getUTCHours() : date.getHours();
  const m = utc ? date.getUTCMinutes() : date.getMinutes();
  const s = utc ? date.getUTCSeconds() : date.getSeconds();
  const frac = nano ? pad(nsec, 9) : pad(Math.floor(nsec / 1000), 6);
  return `${pad(h, 2)}:${pad(m, 2)}:${pad(s, 2)}.${frac} `;
}

function checkCount(value: number, name: string): void {
  if (!Number.isInteger(value) || value < 0) {
    throw new NetpdError('EINVAL', `${name} must be a non-negative integer, got ${value}`);
  }
}

/** A printer for one run over a capture: keeps tcpdump's TCP relative-sequence state. */
export class PacketPrinter {
  private readonly flows = new TcpFlows();
  private readonly utc: boolean;
  private readonly nano: boolean;
  private readonly ifName: (ifIndex: number) => string | undefined;

  constructor(options: PrintOptions = {}) {
    this.utc = options.utc ?? false;
    this.nano = options.nanosecond ?? false;
    this.ifName = options.interfaceName ?? localInterfaceName;
  }

  /**
   * One line for one packet, no trailing newline. `bytes` holds at least capLen bytes
   * from index 0. Throws NetpdError EINVAL for impossible arguments and ENOTSUP for a
   * link type outside PRINTABLE_LINK_TYPES; never for the packet's content.
   */
  format(bytes: Uint8Array, capLen: number, wireLen: number, tsSec: number, tsNsec: number, linkType: number): string {
    checkCount(capLen, 'capLen');
    checkCount(wireLen, 'wireLen');
    checkCount(tsSec, 'tsSec');
    checkCount(tsNsec, 'tsNsec');
    if (capLen > bytes.length) {
      throw new NetpdError('EINVAL', `capLen ${capLen} is more than the ${bytes.length} bytes given`);
    }
    if (!PRINTABLE_LINK_TYPES.includes(linkType)) {
      throw new NetpdError('ENOTSUP', `cannot print packets of link type ${linkType}`, { details: { linkType } });
    }
    const invalid: string[] = [];
    if (capLen === 0) invalid.push(' caplen==0');
    if (wireLen === 0) invalid.push(' len==0');
    else if (wireLen < capLen) invalid.push(` len(${wireLen}) < caplen(${capLen})`);
    if (capLen > MAXIMUM_SNAPLEN) invalid.push(` caplen(${capLen}) > ${MAXIMUM_SNAPLEN}`);
    if (wireLen > MAXIMUM_SNAPLEN) invalid.push(` len(${wireLen}) > ${MAXIMUM_SNAPLEN}`);
    if (invalid.length) return `[Invalid header:${invalid.join(',')}]`;
    const d = new Dissection(bytes, capLen, this.flows, this.ifName);
    try {
      switch (linkType) {
        case 1: etherPrint(d, 0, wireLen, capLen); break;
        case 113: sllPrint(d, wireLen, capLen, false); break;
        case 276: sllPrint(d, wireLen, capLen, true); break;
        case 0: case 108: nullPrint(d, wireLen); break;
        default: rawPrint(d, wireLen);
      }
    } catch (err) {
      if (err !== TRUNCATED) throw err;
      d.trunc();
    }
    return timestamp(tsSec, tsNsec, this.utc, this.nano) + d.out;
  }
}

/**
 * One line as `tcpdump -n -r FILE` prints it (no trailing newline), timestamp included,
 * in UTC when `utc` is true and local time otherwise (tcpdump's own habit). Stateless:
 * TCP sequence numbers print as on the first packet of a connection (absolute); use a
 * PacketPrinter over a whole capture for tcpdump's relative numbers.
 */
export function formatPacket(
  bytes: Uint8Array, capLen: number, wireLen: number, tsSec: number, tsNsec: number, linkType: number,
  options?: PrintOptions,
): string {
  return new PacketPrinter(options).format(bytes, capLen, wireLen, tsSec, tsNsec, linkType);
}
