#!/bin/sh
# Build the libpcap harness into bench/native/bin/ (gitignored).
# Needs gcc and libpcap-dev (apt-get install -y gcc libpcap-dev).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$HERE/bin"
${CC:-gcc} -O2 -Wall -Wextra -o "$HERE/bin/bpfrun" "$HERE/bpfrun.c" -lpcap
echo "built $HERE/bin/bpfrun"
${CC:-gcc} -O2 -Wall -Wextra -o "$HERE/bin/compilebench" "$HERE/compilebench.c" -lpcap
echo "built $HERE/bin/compilebench"
