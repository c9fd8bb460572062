// UDP (print-udp.c, udp_print) at default verbosity.
//
// tcpdump hands the payload of several dozen well-known ports to their own printers.
// Here DNS (53), mDNS (5353), BOOTP/DHCP (67, 68), NTP (123), DHCPv6 (546, 547) and
// Geneve (6081) are decoded as tcpdump does; a datagram on any other port prints "UDP, length N", which is
// tcpdump's line for ports it has no printer for. On the ports tcpdump decodes and netpd does not (SNMP, syslog, RIP,
// VXLAN, Geneve, ...), the lines differ after the ports (test/print.test.ts counts them).

import { Dissection, macString } from './dissection.js';
import { domainPrint } from './dns.js';
import { IpHeader, addressPair } from './ip.js';
import { etherPrint, ethertypePrint } from './link.js';

const NTP_MODES = ['unspecified', 'symmetric active', 'symmetric passive', 'Client', 'Server', 'Broadcast', 'Control Message', 'Reserved'];

/** udpipaddr_print: "src.sport > dst.dport: " (sport < 0: addresses only). */
function addresses(d: Dissection, ip: IpHeader, sport: number, dport: number): void {
  if (ip.headerProto === 17) {
    const [src, dst] = addressPair(d, ip);
    d.print(sport < 0 ? `${src} > ${dst}: ` : `${src}.${sport} > ${dst}.${dport}: `);
  } else if (sport >= 0) {
    d.print(`${sport} > ${dport}: `);
  }
}

/** udp_print: `off` is the UDP header, `length` the UDP length from the IP layer. */
export function udpPrint(d: Dissection, off: number, length: number, ip: IpHeader, fragmented: boolean): void {
  d.protocol = 'udp';
  if (!d.has(off + 2, 2)) {
    addresses(d, ip, -1, -1);
    d.trunc();
    return;
  }
  const sport = d.u16(off);
  const dport = d.u16(off + 2);
  if (length < 8) {
    addresses(d, ip, sport, dport);
    d.print(`truncated-udp ${length}`);
    return;
  }
  if (!d.has(off + 4, 2)) {
    addresses(d, ip, sport, dport);
    d.trunc();
    return;
  }
  let ulen = d.u16(off + 4);
  if (ulen === 0 && length > 65535) ulen = length;
  if (ulen < 8) {
    addresses(d, ip, sport, dport);
    d.print(`truncated-udplength ${ulen}`);
    return;
  }
  ulen -= 8;
  length -= 8;
  if (ulen < length) length = ulen;
  const cp = off + 8;
  if (cp > d.snapEnd) {
    addresses(d, ip, sport, dport);
    d.trunc();
    return;
  }
  addresses(d, ip, sport, dport);
  const entry = PAYLOAD_PRINTERS.find(([match]) => match(sport, dport));
  if (entry?.[1]) {
    entry[1](d, cp, length);
    return;
  }
  d.print(ulen > length && !fragmented ? `UDP, bad length ${ulen} > ${length}` : `UDP, length ${ulen}`);
}

type PortMatch = (sport: number, dport: number) => boolean;
const either = (...ports: number[]): PortMatch => (sport, dport) => ports.includes(sport) || ports.includes(dport);

/**
 * The payload printers by port in tcpdump's order, up to Geneve (the first match wins);
 * null for the printers not ported here (timed, TFTP, RIP, AODV, ISAKMP, SNMP, Kerberos,
 * L2TP, RADIUS, BFD, sFlow, SIP, syslog, VXLAN, ...), whose datagrams print "UDP, length N".
 */
const PAYLOAD_PRINTERS: readonly [PortMatch, ((d: Dissection, off: number, length: number) => void) | null][] = [
  [either(53), (d, off, length) => domainPrint(d, off, length, false, false)],
  [either(5353), (d, off, length) => domainPrint(d, off, length, false, true)],
  [either(525), null], [either(69), null],
  [either(67, 68), bootpPrint],
  [either(520), null], [either(654), null], [either(500), null], [either(4500), null], [either(7500, 8500), null],
  [either(161, 162), null],
  [either(123), ntpPrint],
  [either(88, 750), null], [either(1701), null], [(_s, dport) => dport === 3456, null], [either(2103, 2104), null],
  [(sport, dport) => (sport >= 7000 && sport <= 7009) || (dport >= 7000 && dport <= 7009), null],
  [either(521), null],
  [either(546, 547), dhcp6Print],
  [either(5359), null], [either(6696, 6697), null], [either(8231), null], [(_s, dport) => dport === 4567, null],
  [either(496), null], [either(1645, 1812, 1646, 1813, 1700, 3799), null], [(_s, dport) => dport === 1985, null],
  [either(921), null], [either(646), null], [either(698), null], [either(3503), null], [(sport) => sport === 49152, null],
  [(_s, dport) => [3784, 4784, 6784, 3785].includes(dport), null], [either(701), null], [either(1589), null],
  [either(6343), null], [either(12223, 12222), null], [either(5060), null], [either(514), null], [either(8472), null],
  [either(4789), null],
  [either(6081), genevePrint],
];

/** ntp_print at default verbosity. */
function ntpPrint(d: Dissection, bp: number, length: number): void {
  d.protocol = 'ntp';
  const status = d.u8(bp);
  d.print(`NTPv${(status >> 3) & 7}, ${NTP_MODES[status & 7]}, length ${length}`);
}

const DHCP6_TYPES = ['', 'solicit', 'advertise', 'request', 'confirm', 'renew', 'rebind', 'reply', 'release',
  'decline', 'reconfigure', 'inf-req', 'relay-fwd', 'relay-reply', 'leasequery', 'leasequery-reply'];

/** dhcp6_print at default verbosity: the message type. */
function dhcp6Print(d: Dissection, bp: number): void {
  d.protocol = 'dhcp6';
  d.print('dhcp6');
  d.need(bp, 4);
  const type = d.u8(bp);
  d.print(` ${DHCP6_TYPES[type] || `msgtype-${type}`}`);
}

const GENEVE_FLAGS: readonly [number, string][] = [
  [0x80, 'O'], [0x40, 'C'], [0x20, 'R1'], [0x10, 'R2'], [0x08, 'R3'], [0x04, 'R4'], [0x02, 'R5'], [0x01, 'R6'],
];

/** geneve_print at default verbosity: flags, VNI, the options' size, then the packet inside. */
function genevePrint(d: Dissection, bp: number, len: number): void {
  d.protocol = 'geneve';
  d.print('Geneve');
  if (len < 8) {
    d.print(` [length ${len} < 8] (invalid)`);
    return;
  }
  d.need(bp, 8);
  const verOpt = d.u8(bp);
  if (verOpt >> 6 !== 0) {
    d.print(` ERROR: unknown-version ${verOpt >> 6}`);
    return;
  }
  const flags = d.u8(bp + 1);
  const proto = d.u16(bp + 2);
  const vni = (d.u16(bp + 4) << 8) | d.u8(bp + 6);
  const reserved = d.u8(bp + 7);
  bp += 8;
  len -= 8;
  const flagNames = GENEVE_FLAGS.filter(([bit]) => flags & bit).map(([, n]) => n).join('');
  d.print(`, Flags [${flagNames || 'none'}], vni 0x${vni.toString(16)}`);
  if (reserved) d.print(`, rsvd 0x${reserved.toString(16)}`);
  const optsLen = (verOpt & 0x3f) * 4;
  if (len < optsLen) {
    d.print(` truncated-geneve - ${optsLen - len} bytes missing`);
    return;
  }
  d.need(bp, optsLen);
  if (optsLen > 0) d.print(`, options [${optsLen} bytes]`);
  bp += optsLen;
  len -= optsLen;
  d.print(': ');
  if (ethertypePrint(d, proto, bp, len)) return;
  if (proto === 0x6558) etherPrint(d, bp, len, d.available(bp));
  else d.print(`geneve-proto-0x${proto.toString(16)}`);
}

/** bootp_print at default verbosity: the operation, the client's MAC on an Ethernet request. */
function bootpPrint(d: Dissection, bp: number, length: number): void {
  d.protocol = 'bootp';
  const op = d.u8(bp);
  d.print(`BOOTP/DHCP, ${op === 1 ? 'Request' : op === 2 ? 'Reply' : `unknown (0x${op.toString(16).padStart(2, '0')})`}`);
  const htype = d.u8(bp + 1);
  const hlen = d.u8(bp + 2);
  if (htype === 1 && hlen === 6 && op === 1) d.print(` from ${macString(d, bp + 28)}`);
  d.print(`, length ${length}`);
}
