#!/usr/bin/python3
"""Write samples/sample.pcap: about a minute of a small office LAN, seen from a switch
mirror port. Deterministic (fixed seed, fixed start time, microsecond timestamps,
little-endian classic pcap, Ethernet), so every run writes the same bytes with the
same scapy (Debian's python3-scapy 2.5; run with /usr/bin/python3).

  /usr/bin/python3 scripts/make-sample.py [OUTPUT]      (default samples/sample.pcap)

Mix: ARP requests and replies (broadcast and unicast, gratuitous, unanswered, one ARP
sweep), IPv4 TCP sessions through the gateway and on the LAN (handshake, data both
ways in MSS-sized and small segments, delayed ACKs, FIN), DNS over UDP 53, ICMP echo,
IPv6 (neighbour discovery, router advertisements, ICMPv6 echo, TCP over IPv6),
a little DHCP, NTP and mDNS, a few 802.1Q-tagged frames and 802.3/LLC STP BPDUs.
Addresses are private (192.168.1.0/24, fe80::/64) or documentation ranges
(192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32); nothing is sent.
"""

import ipaddress
import os
import random
import sys

from scapy.all import (ARP, BOOTP, DHCP, DNS, DNSQR, DNSRR, ICMP, IP, TCP, UDP, Dot1Q,
                       Dot3, Ether, LLC, STP, NTP, Padding, Raw, PcapWriter, DLT_EN10MB, conf)
from scapy.layers.inet6 import (IPv6, ICMPv6EchoRequest, ICMPv6EchoReply, ICMPv6ND_NS,
                                ICMPv6ND_NA, ICMPv6ND_RA, ICMPv6ND_RS, ICMPv6NDOptSrcLLAddr,
                                ICMPv6NDOptDstLLAddr, ICMPv6NDOptPrefixInfo, ICMPv6NDOptMTU,
                                IPv6ExtHdrHopByHop, RouterAlert, ICMPv6MLReport2,
                                ICMPv6MLDMultAddrRec)

conf.verb = 0
SEED = 1994            # the year of the OSKit's first release
START_US = 1700000000 * 1000000
DURATION_US = 60 * 1000000
MSS = 1448

R = random.Random(SEED)

BCAST = "ff:ff:ff:ff:ff:ff"
GW_MAC, GW_IP, GW_LL = "00:00:5e:00:01:01", "192.168.1.1", "fe80::1"
SWITCH_MAC = "00:00:5e:00:53:fe"
PREFIX6 = "2001:db8:1:0::"


class Host:
    def __init__(self, n):
        self.n = n
        self.mac = "02:00:00:00:01:%02x" % n
        self.ip = "192.168.1.%d" % n
        self.ll = "fe80::%x" % (0x1000 + n)
        self.ip6 = "2001:db8:1::%x" % (0x1000 + n)
        self.ipid = R.randrange(1, 60000)
        self.v6 = n % 3 != 0          # two hosts in three speak IPv6

    def next_id(self):
        self.ipid = (self.ipid + 1) & 0xffff
        return self.ipid


HOSTS = [Host(n) for n in range(10, 40)]
ABSENT = ["192.168.1.%d" % n for n in (5, 77, 200)]          # nobody answers for these
SERVERS4 = ["203.0.113.%d" % n for n in (10, 20, 30, 40, 80)] + ["198.51.100.%d" % n for n in (7, 25, 99)]
SERVERS6 = ["2001:db8:80::%x" % n for n in (1, 2, 3)]
NAMES = ["www.example.com", "api.example.net", "cdn.example.org", "mail.example.com",
         "updates.example.net", "time.example.org", "git.example.com", "docs.example.org"]

events = []   # (time_us, seq, frame bytes)


def emit(t, frame):
    raw = bytes(frame)
    if len(raw) < 60:                      # what a switch mirror port hands over: padded, no FCS
        raw += b"\x00" * (60 - len(raw))
    if 0 <= t < DURATION_US:
        events.append((int(t), len(events), raw))


def payload(n):
    return bytes(R.randrange(256) for _ in range(n))


# ------------------------------------------------------------------ ARP
def arp_exchange(t, asker_mac, asker_ip, target_ip, target_mac=None, unicast=False):
    dst = target_mac if (unicast and target_mac) else BCAST
    emit(t, Ether(dst=dst, src=asker_mac) / ARP(op=1, hwsrc=asker_mac, psrc=asker_ip,
                                                hwdst="00:00:00:00:00:00", pdst=target_ip))
    if target_mac:
        emit(t + R.randrange(40, 900), Ether(dst=asker_mac, src=target_mac) /
             ARP(op=2, hwsrc=target_mac, psrc=target_ip, hwdst=asker_mac, pdst=asker_ip))


def arp_traffic():
    by_ip = {h.ip: h for h in HOSTS}
    by_ip[GW_IP] = None
    for h in HOSTS:
        # Gratuitous ARP when the host (re)joins, then periodic refreshes of the gateway
        # entry (unicast and broadcast) and of a few LAN peers, with the gateway asking back.
        if R.random() < 0.3:
            t = R.randrange(0, DURATION_US)
            for k in range(2):
                emit(t + k * 1000000, Ether(dst=BCAST, src=h.mac) /
                     ARP(op=1, hwsrc=h.mac, psrc=h.ip, hwdst="00:00:00:00:00:00", pdst=h.ip))
        t = R.randrange(0, 8000000)
        while t < DURATION_US:
            arp_exchange(t, h.mac, h.ip, GW_IP, GW_MAC, unicast=R.random() < 0.5)
            t += R.randrange(5000000, 15000000)
        t = R.randrange(0, 10000000)
        while t < DURATION_US:
            arp_exchange(t, GW_MAC, GW_IP, h.ip, h.mac, unicast=R.random() < 0.4)
            t += R.randrange(8000000, 20000000)
        for _ in range(R.randrange(2, 6)):
            peer = R.choice(HOSTS)
            if peer is not h:
                arp_exchange(R.randrange(0, DURATION_US), h.mac, h.ip, peer.ip, peer.mac, unicast=R.random() < 0.3)
    # Unanswered requests: retried once a second.
    for ip in ABSENT:
        asker = R.choice(HOSTS)
        t = R.randrange(0, DURATION_US - 5000000)
        for k in range(3):
            arp_exchange(t + k * 1000000 + R.randrange(0, 2000), asker.mac, asker.ip, ip)
    # An inventory tool sweeps the whole /24 once.
    sweeper = HOSTS[-1]
    t = 20000000
    for n in range(1, 255):
        ip = "192.168.1.%d" % n
        if ip == sweeper.ip:
            continue
        target = by_ip.get(ip, "absent")
        mac = GW_MAC if ip == GW_IP else (target.mac if target not in (None, "absent") else None)
        arp_exchange(t, sweeper.mac, sweeper.ip, ip, mac)
        t += R.randrange(2000, 6000)


# ------------------------------------------------------------------ TCP
class Flow:
    def __init__(self, cmac, smac, cip, sip, sport, dport, v6=False, ttl_c=64, ttl_s=64, client=None):
        self.cmac, self.smac, self.cip, self.sip = cmac, smac, cip, sip
        self.sport, self.dport, self.v6 = sport, dport, v6
        self.cseq, self.sseq = R.randrange(1 << 32), R.randrange(1 << 32)
        self.ttl_c, self.ttl_s = ttl_c, ttl_s
        self.client = client
        self.sid = R.randrange(1, 60000)
        self.tsval_c, self.tsval_s = R.randrange(1 << 31), R.randrange(1 << 31)

    def frame(self, from_client, flags, seq, ack, data=b"", syn_opts=False, win=None):
        if from_client:
            src_mac, dst_mac, src, dst, sp, dp, ttl = self.cmac, self.smac, self.cip, self.sip, self.sport, self.dport, self.ttl_c
            self.tsval_c += 1
            tsval, tsecr = self.tsval_c, self.tsval_s
        else:
            src_mac, dst_mac, src, dst, sp, dp, ttl = self.smac, self.cmac, self.sip, self.cip, self.dport, self.sport, self.ttl_s
            self.tsval_s += 1
            tsval, tsecr = self.tsval_s, self.tsval_c
        if syn_opts:
            opts = [("MSS", MSS + 12 if not self.v6 else MSS - 8), ("SAckOK", b""), ("Timestamp", (tsval, 0 if "A" not in flags else tsecr)),
                    ("NOP", None), ("WScale", 7)]
        else:
            opts = [("NOP", None), ("NOP", None), ("Timestamp", (tsval, tsecr))]
        tcp = TCP(sport=sp, dport=dp, flags=flags, seq=seq & 0xffffffff, ack=ack & 0xffffffff,
                  window=win or (64240 if syn_opts else 501), options=opts)
        if self.v6:
            l3 = IPv6(src=src, dst=dst, hlim=ttl)
        else:
            if from_client and self.client:
                ipid = self.client.next_id()
            else:
                self.sid = (self.sid + 1) & 0xffff
                ipid = self.sid
            l3 = IP(src=src, dst=dst, ttl=ttl, id=ipid, flags="DF")
        return Ether(src=src_mac, dst=dst_mac) / l3 / tcp / (Raw(data) if data else b"")

    def run(self, t, rtt, exchanges, close=True):
        """exchanges: list of (from_client, nbytes). Returns the time of the last packet."""
        half = rtt // 2
        emit(t, self.frame(True, "S", self.cseq, 0, syn_opts=True))
        t += half
        emit(t, self.frame(False, "SA", self.sseq, self.cseq + 1, syn_opts=True, win=65160))
        t += half
        self.cseq += 1
        self.sseq += 1
        emit(t, self.frame(True, "A", self.cseq, self.sseq))
        for from_client, nbytes in exchanges:
            t += R.randrange(200, 30000)                 # think time
            sent = 0
            unacked = 0
            while sent < nbytes:
                n = min(MSS, nbytes - sent)
                seq = self.cseq if from_client else self.sseq
                ack = self.sseq if from_client else self.cseq
                emit(t, self.frame(from_client, "PA" if sent + n == nbytes else "A", seq, ack, payload(n)))
                if from_client:
                    self.cseq += n
                else:
                    self.sseq += n
                sent += n
                unacked += 1
                t += R.randrange(15, 120) if n == MSS else R.randrange(20, 300)
                if unacked == 2 or sent == nbytes:      # delayed ACK: every second segment
                    emit(t + half, self.frame(not from_client, "A",
                                              self.sseq if from_client else self.cseq,
                                              self.cseq if from_client else self.sseq))
                    unacked = 0
            t += half
        if close:
            t += R.randrange(1000, 200000)
            emit(t, self.frame(True, "FA", self.cseq, self.sseq))
            t += half
            emit(t, self.frame(False, "FA", self.sseq, self.cseq + 1))
            t += half
            emit(t, self.frame(True, "A", self.cseq + 1, self.sseq + 1))
        return t


def ephemeral():
    return R.randrange(32768, 61000)


def web_session(h, t):
    server = R.choice(SERVERS4)
    port = R.choice([443, 443, 443, 80])
    f = Flow(h.mac, GW_MAC, h.ip, server, ephemeral(), port, ttl_s=R.choice([52, 56, 117]), client=h)
    ex = []
    for _ in range(R.randrange(1, 3)):
        ex.append((True, R.randrange(120, 450)))                       # request
        ex.append((False, R.choice([R.randrange(150, 1200), R.randrange(1400, 3000), R.randrange(100, 600)])))
    return f.run(t, R.randrange(8000, 40000), ex)


def ssh_session(h, t):
    peer = R.choice([x for x in HOSTS if x is not h])
    f = Flow(h.mac, peer.mac, h.ip, peer.ip, ephemeral(), 22, client=h)
    ex = [(False, 41), (True, 41), (True, 1392), (False, 1080), (True, 48), (False, 500)]
    for _ in range(R.randrange(10, 30)):                                 # keystrokes and echoes
        ex.append((True, 36))
        ex.append((False, 36))
    ex.append((False, R.randrange(200, 1200)))
    return f.run(t, R.randrange(200, 800), ex)


def smb_session(h, t):
    server = HOSTS[0]
    f = Flow(h.mac, server.mac, h.ip, server.ip, ephemeral(), 445, client=h)
    ex = [(True, 194), (False, 248), (True, 180), (False, 336), (True, 120), (False, R.randrange(1000, 2500))]
    return f.run(t, R.randrange(200, 600), ex, close=R.random() < 0.5)


def web6_session(h, t):
    f = Flow(h.mac, GW_MAC, h.ip6, R.choice(SERVERS6), ephemeral(), 443, v6=True, ttl_s=55)
    ex = [(True, R.randrange(200, 500)), (False, R.randrange(300, 2000))]
    return f.run(t, R.randrange(9000, 30000), ex)


# ------------------------------------------------------------------ UDP, ICMP, IPv6 control
def dns_lookup(h, t, name, qtype="A"):
    qid = R.randrange(65536)
    sport = ephemeral()
    q = Ether(src=h.mac, dst=GW_MAC) / IP(src=h.ip, dst=GW_IP, id=h.next_id()) / UDP(sport=sport, dport=53) / \
        DNS(id=qid, rd=1, qd=DNSQR(qname=name, qtype=qtype))
    emit(t, q)
    t += R.randrange(300, 40000)
    if R.random() < 0.08:
        a = DNS(id=qid, qr=1, rd=1, ra=1, rcode=3, qd=DNSQR(qname=name, qtype=qtype))
    elif qtype == "AAAA":
        a = DNS(id=qid, qr=1, rd=1, ra=1, qd=DNSQR(qname=name, qtype=qtype),
                an=DNSRR(rrname=name, type="AAAA", ttl=R.randrange(30, 3600), rdata=R.choice(SERVERS6)))
    else:
        an = DNSRR(rrname=name, type="A", ttl=R.randrange(30, 3600), rdata=R.choice(SERVERS4))
        if R.random() < 0.4:
            an = an / DNSRR(rrname=name, type="A", ttl=300, rdata=R.choice(SERVERS4))
        a = DNS(id=qid, qr=1, rd=1, ra=1, qd=DNSQR(qname=name, qtype=qtype), an=an)
    emit(t, Ether(src=GW_MAC, dst=h.mac) / IP(src=GW_IP, dst=h.ip, ttl=64) / UDP(sport=53, dport=sport) / a)
    return t


def ping(h, t, dst_ip, dst_mac, count, ttl_back=64):
    ident = R.randrange(65536)
    for s in range(1, count + 1):
        data = bytes(range(16, 16 + 48)) + b"\x00" * 8
        emit(t, Ether(src=h.mac, dst=dst_mac) / IP(src=h.ip, dst=dst_ip, id=h.next_id(), flags="DF") /
             ICMP(type=8, id=ident, seq=s) / Raw(data))
        if dst_ip not in ABSENT:
            emit(t + R.randrange(150, 25000), Ether(src=dst_mac, dst=h.mac) / IP(src=dst_ip, dst=h.ip, ttl=ttl_back) /
                 ICMP(type=0, id=ident, seq=s) / Raw(data))
        t += 1000000 + R.randrange(0, 3000)


def nd_exchange(t, a, b):
    low24 = int(ipaddress.IPv6Address(b.ll)) & 0xffffff
    sol = str(ipaddress.IPv6Address(int(ipaddress.IPv6Address("ff02::1:ff00:0")) | low24))
    smac = "33:33:ff:%02x:%02x:%02x" % (low24 >> 16, (low24 >> 8) & 0xff, low24 & 0xff)
    emit(t, Ether(src=a.mac, dst=smac) / IPv6(src=a.ll, dst=sol, hlim=255) /
         ICMPv6ND_NS(tgt=b.ll) / ICMPv6NDOptSrcLLAddr(lladdr=a.mac))
    emit(t + R.randrange(50, 800), Ether(src=b.mac, dst=a.mac) / IPv6(src=b.ll, dst=a.ll, hlim=255) /
         ICMPv6ND_NA(tgt=b.ll, R=0, S=1, O=1) / ICMPv6NDOptDstLLAddr(lladdr=b.mac))


def ipv6_traffic():
    v6hosts = [h for h in HOSTS if h.v6]
    t = R.randrange(0, 3000000)
    while t < DURATION_US:                                               # router advertisements
        emit(t, Ether(src=GW_MAC, dst="33:33:00:00:00:01") / IPv6(src=GW_LL, dst="ff02::1", hlim=255) /
             ICMPv6ND_RA(routerlifetime=1800) / ICMPv6NDOptSrcLLAddr(lladdr=GW_MAC) / ICMPv6NDOptMTU(mtu=1500) /
             ICMPv6NDOptPrefixInfo(prefix=PREFIX6, prefixlen=64))
        t += R.randrange(12000000, 20000000)
    for h in v6hosts:
        if R.random() < 0.2:
            t = R.randrange(0, DURATION_US)
            emit(t, Ether(src=h.mac, dst="33:33:00:00:00:02") / IPv6(src=h.ll, dst="ff02::2", hlim=255) /
                 ICMPv6ND_RS() / ICMPv6NDOptSrcLLAddr(lladdr=h.mac))
            emit(t + 2000, Ether(src=h.mac, dst="33:33:00:00:00:16") / IPv6(src=h.ll, dst="ff02::16", hlim=1) /
                 IPv6ExtHdrHopByHop(options=[RouterAlert(value=0)]) /
                 ICMPv6MLReport2(records=[ICMPv6MLDMultAddrRec(rtype=4, dst="ff02::fb")]))
        for _ in range(R.randrange(2, 6)):
            peer = R.choice(v6hosts)
            if peer is not h:
                nd_exchange(R.randrange(0, DURATION_US), h, peer)
        gw = Host(1)
        gw.mac, gw.ll = GW_MAC, GW_LL
        nd_exchange(R.randrange(0, DURATION_US), h, gw)
        if R.random() < 0.35:                                            # ping6 a neighbour
            peer = R.choice(v6hosts)
            ident = R.randrange(65536)
            t = R.randrange(0, DURATION_US - 6000000)
            for s in range(1, R.randrange(3, 7)):
                emit(t, Ether(src=h.mac, dst=peer.mac) / IPv6(src=h.ip6, dst=peer.ip6) /
                     ICMPv6EchoRequest(id=ident, seq=s, data=payload(56)))
                emit(t + R.randrange(100, 900), Ether(src=peer.mac, dst=h.mac) / IPv6(src=peer.ip6, dst=h.ip6) /
                     ICMPv6EchoReply(id=ident, seq=s, data=payload(56)))
                t += 1000000
    for h in R.sample(v6hosts, 6):
        t = R.randrange(0, DURATION_US - 5000000)
        dns_lookup(h, t, R.choice(NAMES), "AAAA")
        web6_session(h, t + 50000)


def ntp_time(t):
    """NTP timestamp (seconds since 1900) of sample time t."""
    return (START_US + t) / 1e6 + 2208988800


def misc_udp():
    # DHCP: one full DORA, two renewals.
    newcomer = HOSTS[7]
    xid = R.randrange(1 << 32)
    t = 4000000
    for mtype, src, dst, smac, dmac in (("discover", "0.0.0.0", "255.255.255.255", newcomer.mac, BCAST),
                                        ("offer", GW_IP, newcomer.ip, GW_MAC, newcomer.mac),
                                        ("request", "0.0.0.0", "255.255.255.255", newcomer.mac, BCAST),
                                        ("ack", GW_IP, newcomer.ip, GW_MAC, newcomer.mac)):
        client = src == "0.0.0.0"
        opts = [("message-type", mtype)]
        if not client:
            opts += [("server_id", GW_IP), ("lease_time", 86400), ("subnet_mask", "255.255.255.0"),
                     ("router", GW_IP), ("name_server", GW_IP)]
        else:
            opts += [("requested_addr", newcomer.ip), ("hostname", b"laptop-17")]
        emit(t, Ether(src=smac, dst=dmac) / IP(src=src, dst=dst) /
             UDP(sport=68 if client else 67, dport=67 if client else 68) /
             BOOTP(op=1 if client else 2, xid=xid, chaddr=bytes.fromhex(newcomer.mac.replace(":", "")),
                   yiaddr="0.0.0.0" if client else newcomer.ip) / DHCP(options=opts + ["end"]))
        t += R.randrange(1000, 300000)
    for h in (HOSTS[3], HOSTS[12]):
        t = R.randrange(10000000, 50000000)
        xid = R.randrange(1 << 32)
        emit(t, Ether(src=h.mac, dst=GW_MAC) / IP(src=h.ip, dst=GW_IP) / UDP(sport=68, dport=67) /
             BOOTP(op=1, xid=xid, ciaddr=h.ip, chaddr=bytes.fromhex(h.mac.replace(":", ""))) /
             DHCP(options=[("message-type", "request"), "end"]))
        emit(t + 3000, Ether(src=GW_MAC, dst=h.mac) / IP(src=GW_IP, dst=h.ip) / UDP(sport=67, dport=68) /
             BOOTP(op=2, xid=xid, ciaddr=h.ip, yiaddr=h.ip, chaddr=bytes.fromhex(h.mac.replace(":", ""))) /
             DHCP(options=[("message-type", "ack"), ("lease_time", 86400), "end"]))
    # NTP client/server pairs to a public pool address (documentation range).
    for h in R.sample(HOSTS, 6):
        t = R.randrange(0, DURATION_US)
        rtt = R.randrange(5000, 30000)
        sent = ntp_time(t)
        emit(t, Ether(src=h.mac, dst=GW_MAC) / IP(src=h.ip, dst="192.0.2.123", id=h.next_id()) /
             UDP(sport=123, dport=123) / NTP(version=4, mode=3, stratum=0, orig=0, sent=sent))
        emit(t + rtt, Ether(src=GW_MAC, dst=h.mac) / IP(src="192.0.2.123", dst=h.ip, ttl=54) /
             UDP(sport=123, dport=123) / NTP(version=4, mode=4, stratum=2, ref=ntp_time(t - 30000000), orig=sent,
                                            recv=ntp_time(t + rtt // 2), sent=ntp_time(t + rtt // 2 + 40)))
    # mDNS announcements and queries.
    for _ in range(24):
        h = R.choice(HOSTS)
        t = R.randrange(0, DURATION_US)
        name = R.choice(["_ipp._tcp.local", "_airplay._tcp.local", "_googlecast._tcp.local", "_smb._tcp.local"])
        if R.random() < 0.5:
            d = DNS(id=0, qd=DNSQR(qname=name, qtype="PTR", qclass=1))
        else:
            d = DNS(id=0, qr=1, aa=1, an=DNSRR(rrname=name, type="PTR", ttl=4500, rdata="printer-%d.%s" % (h.n, name)))
        if h.v6 and R.random() < 0.4:
            emit(t, Ether(src=h.mac, dst="33:33:00:00:00:fb") / IPv6(src=h.ll, dst="ff02::fb", hlim=255) /
                 UDP(sport=5353, dport=5353) / d)
        else:
            emit(t, Ether(src=h.mac, dst="01:00:5e:00:00:fb") / IP(src=h.ip, dst="224.0.0.251", ttl=255) /
                 UDP(sport=5353, dport=5353) / d)


def vlan_and_stp():
    # A trunk leaks a few voice-VLAN frames onto the mirror: tagged ARP and RTP-like UDP.
    phone_mac, pbx_mac = "02:00:00:00:64:01", "02:00:00:00:64:02"
    t = 30000000
    emit(t, Ether(src=phone_mac, dst=BCAST) / Dot1Q(vlan=100, prio=5) /
         ARP(op=1, hwsrc=phone_mac, psrc="10.100.0.21", pdst="10.100.0.1"))
    emit(t + 500, Ether(src=pbx_mac, dst=phone_mac) / Dot1Q(vlan=100, prio=5) /
         ARP(op=2, hwsrc=pbx_mac, psrc="10.100.0.1", hwdst=phone_mac, pdst="10.100.0.21"))
    for k in range(12):
        emit(t + 2000 + k * 20000, Ether(src=phone_mac, dst=pbx_mac) / Dot1Q(vlan=100, prio=5) /
             IP(src="10.100.0.21", dst="10.100.0.1", tos=0xb8) / UDP(sport=16384, dport=16384) /
             Raw(b"\x80\x00" + (k).to_bytes(2, "big") + payload(168)))
    # STP configuration BPDUs from the switch every 2 s.
    t = R.randrange(0, 2000000)
    while t < DURATION_US:
        emit(t, Dot3(src=SWITCH_MAC, dst="01:80:c2:00:00:00") / LLC(dsap=0x42, ssap=0x42, ctrl=3) /
             STP(rootid=32768, rootmac=SWITCH_MAC, bridgeid=32768, bridgemac=SWITCH_MAC, portid=0x8003))
        t += 2000000


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "samples", "sample.pcap")
    arp_traffic()
    for h in HOSTS:
        t = R.randrange(0, 10000000)
        while t < DURATION_US - 3000000:
            name = R.choice(NAMES)
            t = dns_lookup(h, t, name)
            if R.random() < 0.5:
                dns_lookup(h, t + 100, name, "AAAA")
            if R.random() < 0.4:
                web_session(h, t + R.randrange(100, 3000))
            t += R.randrange(6000000, 22000000)
    for h in R.sample(HOSTS, 3):
        ssh_session(h, R.randrange(0, DURATION_US - 20000000))
    for h in R.sample(HOSTS, 3):
        smb_session(h, R.randrange(0, DURATION_US - 5000000))
    for h in R.sample(HOSTS, 5):
        ping(h, R.randrange(0, DURATION_US - 6000000), GW_IP, GW_MAC, R.randrange(3, 6))
    for h in R.sample(HOSTS, 3):
        ping(h, R.randrange(0, DURATION_US - 6000000), R.choice(SERVERS4), GW_MAC, 4, ttl_back=117)
    ipv6_traffic()
    misc_udp()
    vlan_and_stp()

    events.sort()
    w = PcapWriter(out, linktype=DLT_EN10MB, endianness="<", snaplen=262144)
    w.write_header(None)
    for t, _, raw in events:
        us = START_US + t
        w.write_packet(raw, sec=us // 1000000, usec=us % 1000000, caplen=len(raw), wirelen=len(raw))
    w.close()
    print("%s: %d packets, %d bytes" % (out, len(events), os.path.getsize(out)))


if __name__ == "__main__":
    main()
