/*
 * bpfrun: run classic BPF programs given in `tcpdump -ddd` form with libpcap's
 * own interpreter, bpf_filter(). The reference netpd's interpreter is compared
 * against (test/fixtures/bpf/make-bpf-fixtures.mjs) and the native baseline of
 * the dispatch benchmarks.
 *
 *   bpfrun match PROGRAM.ddd FILE.pcap
 *       prints the 1-based numbers of the packets the program accepts, one per line
 *   bpfrun bench PROGRAM.ddd [PROGRAM2.ddd ...] FILE.pcap [--seconds S]
 *   bpfrun bench --rules RULES FILE.pcap [--seconds S]
 *       holds FILE's packets in memory and runs the programs over them again and
 *       again for about S seconds (default 1), per packet one program after another
 *       until one accepts (like a dispatcher); with --rules the programs are the
 *       lines of RULES (pcap-filter expressions; blank and # lines skipped) compiled
 *       by libpcap's own pcap_compile for Ethernet, optimizer on; prints one JSON line
 *       {"packets":N,"programs":P,"nsPerPacket":X,"pps":Y,"accepted":A}
 *       where accepted counts the packets of one pass that some program accepted
 *
 * A .ddd file is exactly what `tcpdump -ddd EXPR` prints: the instruction count
 * on the first line, then one instruction per line, `code jt jf k` in decimal.
 * "-" reads the program from standard input.
 *
 * Build: bench/native/build.sh  (gcc -O2 -o bench/native/bin/bpfrun bpfrun.c -lpcap)
 */
#define _DEFAULT_SOURCE 1   /* u_int, u_char in <pcap/bpf.h> */
#include <errno.h>
#include <limits.h>
#include <pcap/pcap.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_PROGRAM_BYTES (1 << 20)
#ifndef BPF_MAXINSNS
#define BPF_MAXINSNS 4096   /* as in the kernel and libpcap */
#endif

struct program {
    const char *path;
    struct bpf_insn *insns;
    int len;
};

struct packet {
    size_t offset;   /* into the packet buffer */
    uint32_t caplen;
    uint32_t wirelen;
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    fputs("bpfrun: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static void usage(void)
{
    fputs("usage: bpfrun match PROGRAM.ddd FILE.pcap\n"
          "       bpfrun bench PROGRAM.ddd [PROGRAM2.ddd ...] FILE.pcap [--seconds S]\n"
          "       bpfrun bench --rules RULES FILE.pcap [--seconds S]\n"
          "PROGRAM.ddd is `tcpdump -ddd` output: a count line, then `code jt jf k` lines.\n",
          stderr);
    exit(2);
}

static char *read_all(const char *path, size_t *len_out)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!f)
        die("%s: cannot open program: %s", path, strerror(errno));
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap + 1);
    if (!buf)
        die("out of memory");
    for (;;) {
        if (len == cap) {
            if (cap >= MAX_PROGRAM_BYTES)
                die("%s: program file larger than %d bytes", path, MAX_PROGRAM_BYTES);
            cap *= 2;
            buf = realloc(buf, cap + 1);
            if (!buf)
                die("out of memory");
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0) {
            if (ferror(f))
                die("%s: read error: %s", path, strerror(errno));
            break;
        }
    }
    if (f != stdin)
        fclose(f);
    buf[len] = '\0';
    if (memchr(buf, '\0', len))
        die("%s: not a text file (contains NUL bytes)", path);
    *len_out = len;
    return buf;
}

/* Parse one unsigned decimal number no larger than max; advance *p past it. */
static int parse_uint(const char **p, unsigned long long max, unsigned long long *out)
{
    const char *s = *p;
    unsigned long long v = 0;
    if (*s < '0' || *s > '9')
        return 0;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (unsigned long long)(*s - '0');
        if (v > max)
            return 0;
        s++;
    }
    *p = s;
    *out = v;
    return 1;
}

static void skip_blanks(const char **p)
{
    while (**p == ' ' || **p == '\t')
        (*p)++;
}

static int at_line_end(const char *p)
{
    return *p == '\0' || *p == '\n' || (*p == '\r' && (p[1] == '\n' || p[1] == '\0'));
}

static void load_program(const char *path, struct program *prog)
{
    size_t size;
    char *text = read_all(path, &size);
    const char *p = text;
    int lineno = 1;
    unsigned long long count;

    skip_blanks(&p);
    if (!parse_uint(&p, BPF_MAXINSNS, &count) || count == 0) {
        skip_blanks(&p);
        die("%s:1: expected the instruction count (1..%d) as in `tcpdump -ddd` output",
            path, BPF_MAXINSNS);
    }
    skip_blanks(&p);
    if (!at_line_end(p))
        die("%s:1: unexpected text after the instruction count", path);

    prog->path = path;
    prog->len = (int)count;
    prog->insns = calloc(count, sizeof(struct bpf_insn));
    if (!prog->insns)
        die("out of memory");

    for (unsigned long long i = 0; i < count; i++) {
        while (*p && *p != '\n')
            p++;
        if (*p == '\0')
            die("%s: the count line says %llu instructions but the file has %llu",
                path, count, i);
        p++;
        lineno++;
        const char *rest = p;
        while (*rest == ' ' || *rest == '\t' || *rest == '\r' || *rest == '\n')
            rest++;
        if (*rest == '\0')
            die("%s: the count line says %llu instructions but the file has %llu",
                path, count, i);
        unsigned long long code, jt, jf, k;
        skip_blanks(&p);
        if (at_line_end(p))
            die("%s:%d: empty line where instruction %llu of %llu was expected", path, lineno, i + 1, count);
        if (!parse_uint(&p, 0xffff, &code))
            die("%s:%d: bad opcode (want a decimal number 0..65535)", path, lineno);
        skip_blanks(&p);
        if (!parse_uint(&p, 0xff, &jt))
            die("%s:%d: bad jt (want a decimal number 0..255)", path, lineno);
        skip_blanks(&p);
        if (!parse_uint(&p, 0xff, &jf))
            die("%s:%d: bad jf (want a decimal number 0..255)", path, lineno);
        skip_blanks(&p);
        if (!parse_uint(&p, 0xffffffffULL, &k))
            die("%s:%d: bad k (want a decimal number 0..4294967295)", path, lineno);
        skip_blanks(&p);
        if (!at_line_end(p))
            die("%s:%d: unexpected text after `code jt jf k`", path, lineno);
        prog->insns[i].code = (u_short)code;
        prog->insns[i].jt = (u_char)jt;
        prog->insns[i].jf = (u_char)jf;
        prog->insns[i].k = (bpf_u_int32)k;
    }
    /* Only blank lines may follow. */
    while (*p) {
        if (*p != '\n' && *p != '\r' && *p != ' ' && *p != '\t')
            die("%s: more lines than the %llu instructions the count line announces", path, count);
        p++;
    }
    free(text);
    if (!bpf_validate(prog->insns, prog->len))
        die("%s: libpcap's bpf_validate rejects the program "
            "(unknown opcode, jump past the end, bad scratch index, division by constant 0, "
            "or no return at the end)", path);
}

/* Compile every expression line of `path` with libpcap; returns how many. */
static int load_rules(const char *path, struct program **out)
{
    size_t size;
    char *text = read_all(path, &size);
    int cap = 64, n = 0, lineno = 0;
    struct program *progs = malloc((size_t)cap * sizeof *progs);
    pcap_t *dead = pcap_open_dead(DLT_EN10MB, 262144);
    if (!progs || !dead)
        die("out of memory");
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        lineno++;
        while (*line == ' ' || *line == '\t')
            line++;
        size_t len = strlen(line);
        while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
            line[--len] = '\0';
        if (len == 0 || line[0] == '#')
            continue;
        struct bpf_program fp;
        if (pcap_compile(dead, &fp, line, 1, PCAP_NETMASK_UNKNOWN) != 0)
            die("%s: line %d: libpcap cannot compile \"%s\": %s", path, lineno, line, pcap_geterr(dead));
        if (n == cap) {
            cap *= 2;
            progs = realloc(progs, (size_t)cap * sizeof *progs);
            if (!progs)
                die("out of memory");
        }
        progs[n].path = path;
        progs[n].insns = fp.bf_insns;
        progs[n].len = (int)fp.bf_len;
        n++;
    }
    pcap_close(dead);
    free(text);
    *out = progs;
    return n;
}

static pcap_t *open_capture(const char *path)
{
    char errbuf[PCAP_ERRBUF_SIZE];
    pcap_t *pc = pcap_open_offline(path, errbuf);
    if (!pc)
        die("%s: %s", path, errbuf);
    return pc;
}

static int cmd_match(int argc, char **argv)
{
    if (argc != 2)
        usage();
    struct program prog;
    load_program(argv[0], &prog);
    pcap_t *pc = open_capture(argv[1]);
    struct pcap_pkthdr *hdr;
    const u_char *data;
    unsigned long n = 0;
    int rc;
    while ((rc = pcap_next_ex(pc, &hdr, &data)) == 1) {
        n++;
        if (bpf_filter(prog.insns, data, hdr->len, hdr->caplen) != 0)
            printf("%lu\n", n);
    }
    if (rc == PCAP_ERROR)
        die("%s: after packet %lu: %s", argv[1], n, pcap_geterr(pc));
    pcap_close(pc);
    free(prog.insns);
    if (fflush(stdout) != 0)
        die("write error: %s", strerror(errno));
    return 0;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* One pass over all packets; returns how many some program accepted. */
static unsigned long run_pass(const struct program *progs, int nprogs, const struct packet *pkts,
                              size_t npkts, const u_char *buf, unsigned long *sink)
{
    unsigned long accepted = 0;
    for (size_t i = 0; i < npkts; i++) {
        const u_char *data = buf + pkts[i].offset;
        for (int j = 0; j < nprogs; j++) {
            u_int r = bpf_filter(progs[j].insns, data, pkts[i].wirelen, pkts[i].caplen);
            if (r != 0) {
                accepted++;
                *sink += r + (unsigned long)j;
                break;
            }
        }
    }
    return accepted;
}

static int cmd_bench(int argc, char **argv)
{
    double seconds = 1.0;
    const char *paths[argc > 0 ? argc : 1];
    const char *rules = NULL;
    int npaths = 0;
    for (int i = 0; i < argc; i++) {
        const char *val = NULL;
        if (strcmp(argv[i], "--rules") == 0) {
            if (i + 1 >= argc)
                die("--rules needs a file");
            rules = argv[++i];
            continue;
        } else if (strcmp(argv[i], "--seconds") == 0) {
            if (i + 1 >= argc)
                die("--seconds needs a value");
            val = argv[++i];
        } else if (strncmp(argv[i], "--seconds=", 10) == 0) {
            val = argv[i] + 10;
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            die("unknown option %s", argv[i]);
        } else {
            paths[npaths++] = argv[i];
            continue;
        }
        char *end;
        errno = 0;
        seconds = strtod(val, &end);
        if (errno || end == val || *end || !(seconds > 0) || seconds > 3600)
            die("--seconds wants a number of seconds in (0, 3600], got '%s'", val);
    }
    if (npaths < (rules ? 1 : 2) || (rules && npaths != 1))
        usage();
    const char *capture = paths[npaths - 1];
    struct program *progs;
    int nprogs;
    if (rules) {
        nprogs = load_rules(rules, &progs);
        if (nprogs == 0)
            die("%s: no rules", rules);
    } else {
        nprogs = npaths - 1;
        progs = calloc((size_t)nprogs, sizeof *progs);
        if (!progs)
            die("out of memory");
        for (int j = 0; j < nprogs; j++)
            load_program(paths[j], &progs[j]);
    }

    /* Load every packet into one buffer. */
    pcap_t *pc = open_capture(capture);
    size_t cap_pkts = 1024, npkts = 0, cap_buf = 1 << 20, used = 0;
    struct packet *pkts = malloc(cap_pkts * sizeof *pkts);
    u_char *buf = malloc(cap_buf);
    if (!pkts || !buf)
        die("out of memory");
    struct pcap_pkthdr *hdr;
    const u_char *data;
    int rc;
    while ((rc = pcap_next_ex(pc, &hdr, &data)) == 1) {
        if (npkts == cap_pkts) {
            cap_pkts *= 2;
            pkts = realloc(pkts, cap_pkts * sizeof *pkts);
            if (!pkts)
                die("out of memory");
        }
        size_t need = (hdr->caplen + 15u) & ~(size_t)15;   /* keep packets 16-byte aligned */
        while (used + need > cap_buf) {
            cap_buf *= 2;
            buf = realloc(buf, cap_buf);
            if (!buf)
                die("out of memory");
        }
        memcpy(buf + used, data, hdr->caplen);
        pkts[npkts].offset = used;
        pkts[npkts].caplen = hdr->caplen;
        pkts[npkts].wirelen = hdr->len;
        used += need;
        npkts++;
    }
    if (rc == PCAP_ERROR)
        die("%s: after packet %zu: %s", capture, npkts, pcap_geterr(pc));
    pcap_close(pc);
    if (npkts == 0)
        die("%s: no packets", capture);

    /* bpf_filter is an external call the compiler cannot drop; its results also go
     * into sink, which ends in a volatile store, so no pass can be optimised away. */
    unsigned long sink = 0;
    unsigned long accepted = run_pass(progs, nprogs, pkts, npkts, buf, &sink);   /* warm-up */
    size_t passes_per_check = npkts >= 4096 ? 1 : (4096 + npkts - 1) / npkts;
    double budget = seconds * 1e9;
    unsigned long long passes = 0;
    double start = now_ns(), elapsed;
    do {
        for (size_t k = 0; k < passes_per_check; k++)
            run_pass(progs, nprogs, pkts, npkts, buf, &sink);
        passes += passes_per_check;
        elapsed = now_ns() - start;
    } while (elapsed < budget);

    volatile unsigned long keep = sink;
    (void)keep;
    double total = (double)passes * (double)npkts;
    double ns_per_packet = elapsed / total;
    printf("{\"packets\":%zu,\"programs\":%d,\"nsPerPacket\":%.3f,\"pps\":%.0f,\"accepted\":%lu}\n",
           npkts, nprogs, ns_per_packet, 1e9 / ns_per_packet, accepted);
    for (int j = 0; j < nprogs; j++)
        free(progs[j].insns);
    free(progs);
    free(pkts);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    if (strcmp(argv[1], "match") == 0)
        return cmd_match(argc - 2, argv + 2);
    if (strcmp(argv[1], "bench") == 0)
        return cmd_bench(argc - 2, argv + 2);
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)
        usage();
    fprintf(stderr, "bpfrun: unknown mode '%s'\n", argv[1]);
    usage();
}
