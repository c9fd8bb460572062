// UDP (print-udp.c, udp_print) at default verbosity.
//
// tcpdump hands the payload of several dozen well-known ports to their own printers.
// Here DNS (53), mDNS (5353), BOOTP/DHCP (67, 68), NTP (123) and DHCPv6 (546, 547) are
// decoded as tcpdump does; a datagram on any other port prints "UDP, length N", which is
// tcpdump's line for ports it has no printer for. On the ports tcpdump decodes and netpd does not (SNMP, syslog, RIP,
// VXLAN, Geneve, ...), the lines differ after the ports (test/print.test.ts counts them).

import { Dissection, macString } from './dissection.js';
import { domainPrint } from './dns.js';
import { IpHeader, addressPair } from './ip.js';

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
 * The payload printers by port in tcpdump's order, up to DHCPv6 (the first match wins);
 * null for the printers not ported here (timed, TFTP, RIP, AODV, ISAKMP, SNMP, Kerberos,
 * L2TP, VAT, Zephyr, RX, RIPng), whose datagrams print "UDP, length N".
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
