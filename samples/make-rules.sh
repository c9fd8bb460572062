#!/bin/sh
# Compiles the bundled sample's default rules with tcpdump (libpcap) into
# samples/rules.json (or the path given): [{ name, expr, ddd }]. Run from the repository root.
set -eu
out=${1:-samples/rules.json}
tmp=$(mktemp)
printf '[\n' > "$tmp"
first=1
while IFS='|' read -r name expr; do
  [ -n "$name" ] || continue
  ddd=$(tcpdump -y EN10MB -ddd "$expr" | awk 'BEGIN{ORS="\\n"} {print}')
  [ $first -eq 1 ] || printf ',\n' >> "$tmp"
  first=0
  printf '  { "name": "%s", "expr": "%s", "ddd": "%s" }' "$name" "$expr" "$ddd" >> "$tmp"
done <<'RULES'
arp-request|arp[6:2] = 1
arp-reply|arp[6:2] = 2
ipv4-tcp|ip and tcp
udp-dns|udp port 53
ipv6|ip6
RULES
printf '\n]\n' >> "$tmp"
mv "$tmp" "$out"
echo "wrote $out ($(tcpdump --version 2>&1 | head -1))"
