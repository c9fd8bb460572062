/*
 * compilebench: how long libpcap's pcap_compile takes per expression, the peer of
 * netpd's compileFilter in bench/run.mjs.
 *
 *   compilebench [-O] SECONDS EXPR...
 *       compiles each EXPR for Ethernet (snaplen 262144) again and again for about
 *       SECONDS in all and prints one JSON line per expression:
 *       {"expr":"...","usPerCompile":X,"instructions":N}
 *   -O turns the optimizer off, as tcpdump -O does.
 *
 * Build: bench/native/build.sh
 */
#define _DEFAULT_SOURCE 1
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    int optimize = 1, first = 1;
    if (argc > 1 && strcmp(argv[1], "-O") == 0) { optimize = 0; first = 2; }
    if (argc < first + 2) { fprintf(stderr, "usage: compilebench [-O] SECONDS EXPR...\n"); return 2; }
    double seconds = atof(argv[first]);
    int n = argc - first - 1;
    pcap_t *p = pcap_open_dead(DLT_EN10MB, 262144);
    for (int i = 0; i < n; i++) {
        const char *expr = argv[first + 1 + i];
        struct bpf_program prog;
        long count = 0;
        unsigned len = 0;
        double start = now(), end;
        do {
            for (int k = 0; k < 50; k++) {
                if (pcap_compile(p, &prog, expr, optimize, PCAP_NETMASK_UNKNOWN) != 0) {
                    fprintf(stderr, "compilebench: %s: %s\n", expr, pcap_geterr(p));
                    return 1;
                }
                len = prog.bf_len;
                pcap_freecode(&prog);
                count++;
            }
            end = now();
        } while (end - start < seconds / n);
        printf("{\"expr\":\"%s\",\"usPerCompile\":%.3f,\"instructions\":%u}\n", expr, (end - start) * 1e6 / count, len);
    }
    pcap_close(p);
    return 0;
}
