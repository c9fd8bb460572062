// PPPoE (print-pppoe.c) and the PPP inside a session (print-ppp.c, ppp_print) at default
// verbosity: discovery packets with their tags, session packets with IPv4, IPv6 or MPLS
// inside, and the first line of the control protocols (LCP, IPCP, IP6CP, CCP, ...).
// Authentication (PAP, CHAP, EAP) and multilink are not decoded: their name is printed,
// as tcpdump does for a PPP protocol it knows by name only.

import { Dissection, tok } from './dissection.js';
import { ip6Print, ipPrint } from './ip.js';
import { mplsPrint } from './mpls.js';

const CODES: ReadonlyMap<number, string> = new Map([[0x09, 'PADI'], [0x07, 'PADO'], [0x19, 'PADR'], [0x65, 'PADS'], [0xa7, 'PADT'], [0, '']]);
const TAGS: ReadonlyMap<number, string> = new Map([
  [0, 'EOL'], [0x0101, 'Service-Name'], [0x0102, 'AC-Name'], [0x0103, 'Host-Uniq'], [0x0104, 'AC-Cookie'],
  [0x0105, 'Vendor-Specific'], [0x0110, 'Relay-Session-ID'], [0x0120, 'PPP-Max-Payload'],
  [0x0201, 'Service-Name-Error'], [0x0202, 'AC-System-Error'], [0x0203, 'Generic-Error'],
]);
const PPP_TYPES: ReadonlyMap<number, string> = new Map([
  [0x0021, 'IP'], [0x0023, 'OSI'], [0x0025, 'NS'], [0x0027, 'DECNET'], [0x0029, 'APPLE'], [0x002b, 'IPX'],
  [0x002d, 'VJC IP'], [0x002f, 'VJNC IP'], [0x0031, 'BRPDU'], [0x0033, 'STII'], [0x0035, 'VINES'],
  [0x0281, 'MPLS'], [0x0283, 'MPLS'], [0x00fd, 'Compressed'], [0x003d, 'MLPPP'], [0x0057, 'IP6'],
  [0x0201, 'HELLO'], [0x0231, 'LUXCOM'], [0x0233, 'SNS'], [0x8021, 'IPCP'], [0x8023, 'OSICP'],
  [0x8025, 'NSCP'], [0x8027, 'DECNETCP'], [0x8029, 'APPLECP'], [0x802b, 'IPXCP'], [0x8033, 'STIICP'],
  [0x8035, 'VINESCP'], [0x8057, 'IP6CP'], [0x8281, 'MPLSCP'], [0xc021, 'LCP'], [0xc023, 'PAP'],
  [0xc025, 'LQM'], [0xc223, 'CHAP'], [0xc227, 'EAP'], [0xc027, 'SPAP'], [0xc123, 'Old-SPAP'],
  [0xc02b, 'BACP'], [0xc02d, 'BAP'], [0xc03d, 'MLPPP-CP'], [0x80fd, 'CCP'],
]);
const CP_CODES = ['Vendor-Extension', 'Conf-Request', 'Conf-Ack', 'Conf-Nack', 'Conf-Reject', 'Term-Request',
  'Term-Ack', 'Code-Reject', 'Prot-Reject', 'Echo-Request', 'Echo-Reply', 'Disc-Req', 'Ident', 'Time-Rem',
  'Reset-Req', 'Reset-Ack'];
const PPPOE_HDRLEN = 6;
const MAXTAGPRINT = 80;

const isPrint = (c: number): boolean => c >= 0x20 && c < 0x7f;

/** pppoe_print. */
export function pppoePrint(d: Dissection, p: number, length: number): void {
  d.protocol = 'pppoe';
  if (length < PPPOE_HDRLEN) {
    d.print(` (length ${length} < ${PPPOE_HDRLEN}) (invalid)`);
    return;
  }
  length -= PPPOE_HDRLEN;
  d.need(p, PPPOE_HDRLEN);
  const ver = d.u8(p) >> 4, type = d.u8(p) & 0x0f, code = d.u8(p + 1);
  const session = d.u16(p + 2);
  let pppoeLength = d.u16(p + 4);
  if (ver !== 1) d.print(` [ver ${ver}]`);
  if (type !== 1) d.print(` [type ${type}]`);
  d.print(`PPPoE ${tok(CODES, 'PAD-%x', code)}`);
  if (code === 0x09 && pppoeLength > 1484 - PPPOE_HDRLEN) d.print(` [len ${pppoeLength}!]`);
  if (pppoeLength > length) {
    d.print(` [len ${pppoeLength} > ${length}!]`);
    pppoeLength = length;
  }
  if (session) d.print(` [ses 0x${session.toString(16)}]`);
  const payload = p + PPPOE_HDRLEN;
  if (code === 0) {
    d.print(' ');
    pppPrint(d, payload, pppoeLength);
    return;
  }
  let tagType = 0xffff;
  for (let t = payload; tagType && t < payload + pppoeLength;) {
    tagType = d.u16(t);
    const tagLen = d.u16(t + 2);
    t += 4;
    const name = tok(TAGS, 'TAG-0x%x', tagType);
    if (tagLen) {
      d.need(t, tagLen);
      let text = '', ascii = 0, garbage = 0;
      for (let i = 0; i < tagLen && text.length < MAXTAGPRINT - 1; i++) {
        const c = d.u8(t + i);
        if (isPrint(c)) {
          text += String.fromCharCode(c);
          ascii++;
        } else {
          text += '.';
          garbage++;
        }
      }
      if (ascii > garbage) {
        d.print(` [${name} "${text}"]`);
      } else {
        let hex = '';
        for (let i = 0; i < tagLen; i++) hex += d.u8(t + i).toString(16).toUpperCase().padStart(2, '0');
        d.print(` [${name} 0x${hex}]`);
      }
    } else {
      d.print(` [${name}]`);
    }
    t += tagLen;
  }
}

/** ppp_print: the optional address/control bytes, the (possibly compressed) protocol, the payload. */
function pppPrint(d: Dissection, p: number, length: number): void {
  d.protocol = 'ppp';
  if (length < 2) return d.trunc();
  const header = d.u16(p);
  if (header === 0x0003 || header === 0x0103 || header === 0xff03) {
    p += 2;
    length -= 2;
  }
  if (length < 2) return d.trunc();
  let proto: number;
  if (d.u8(p) % 2) {
    proto = d.u8(p);
    p += 1;
    length -= 1;
  } else {
    proto = d.u16(p);
    p += 2;
    length -= 2;
  }
  switch (proto) {
    case 0x0800: case 0x002f: case 0x0021: ipPrint(d, p, length); break;
    case 0x86dd: case 0x0057: ip6Print(d, p, length); break;
    case 0x0281: case 0x0283: mplsPrint(d, p, length); break;
    case 0x00fd: d.print('compressed PPP data'); break;
    case 0xc021: case 0x8021: case 0x8023: case 0x8281: case 0x8057: case 0x80fd: case 0xc02b:
      controlPrint(d, proto, p, length);
      break;
    default:
      // Authentication and the rest are decoded by tcpdump, not here; for a
      // protocol it knows by name only, this is what it prints (then a hex dump).
      d.print(`${tok(PPP_TYPES, 'unknown PPP protocol (0x%04x)', proto)} `);
  }
}

/** handle_ctrl_proto at default verbosity: "LCP, Conf-Request (0x01), id 1, length 16". */
function controlPrint(d: Dissection, proto: number, p: number, length: number): void {
  const name = tok(PPP_TYPES, 'unknown ctrl-proto (0x%04x)', proto);
  d.print(`${name}, `);
  if (length < 4 || !d.has(p, 2)) {
    d.print(`[|${name}]`); // handle_ctrl_proto's own truncation marker, without the space
    return;
  }
  const code = d.u8(p);
  // tcpdump prints the length as the payload's plus 2 (its own arithmetic, kept).
  d.print(`${CP_CODES[code] ?? 'Unknown Opcode'} (0x${code.toString(16).padStart(2, '0')}), id ${d.u8(p + 1)}, length ${length + 2}`);
}
