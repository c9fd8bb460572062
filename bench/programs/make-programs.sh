#!/bin/sh
# Compiles the benchmark's rule sets with tcpdump (libpcap's optimizer) into -ddd files,
# so netpd's interpreter and libpcap's bpf_filter run the very same programs.
# one/: a single filter; ten/: ten owners, dispatched first-match-wins in file order.
set -eu
cd "$(dirname "$0")"
rm -rf one ten && mkdir -p one ten

tcpdump -y EN10MB -ddd 'tcp port 80' > one/00.ddd
i=0
for expr in 'tcp port 22' 'tcp port 443' 'udp port 123' 'icmp' 'vlan' 'ip6 and tcp' 'udp port 5353' 'arp[6:2] = 2' 'udp port 53' 'tcp port 80'; do
  tcpdump -y EN10MB -ddd "$expr" > "ten/$(printf %02d $i).ddd"
  printf '%s\n' "$expr" >> ten/expressions.txt
  i=$((i + 1))
done
echo "$(tcpdump --version 2>&1 | head -1)" > VERSION
