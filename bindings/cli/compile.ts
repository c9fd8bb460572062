// netpd compile [-d | -dd | -ddd] [-O] [-r FILE | -y LINKTYPE] [-s SNAPLEN] EXPR: netpd's
// program in the forms tcpdump prints (-dd is -d twice, as tcpdump counts it). As in
// tcpdump: with -r FILE, the program `tcpdump -r FILE -d` prints (the file's link type and
// byte order, a capture file's code); with -y, a live capture's on that link type, what
// `tcpdump -y TYPE -d` prints; Ethernet by default.

import { Command } from 'commander';
import { NetpdError } from '../errors.js';
import { compileFilter } from '../filter/compile.js';
import { formatProgram } from '../filter/format.js';
import { expression, fileLinkType, linkType, positive } from './options.js';

interface CompileFlags {
  d?: number;
  read?: string;
  optimize?: boolean;
  linktype?: string;
  snaplen?: string;
  file?: string;
}

export function compileCommand(): Command {
  return new Command('compile')
    .summary('print the compiled program as tcpdump -d, -dd or -ddd does')
    .description('Compiles a pcap-filter expression and prints the classic BPF program in the form tcpdump -d (the default), -dd or -ddd prints.')
    .argument('[expr...]', 'a pcap-filter expression')
    .option('-d', '-d: instructions as text; -dd: as a C array; -ddd: as decimal numbers', (_v: string, n: number) => n + 1, 0)
    .option('-O, --no-optimize', 'do not run the optimizer (tcpdump -O; -O0 too)')
    .option('-r, --read <file>', 'compile for this capture file\'s link type, as tcpdump -r FILE -d')
    .option('-y, --linktype <type>', 'compile for this link type: EN10MB (default), LINUX_SLL, LINUX_SLL2, RAW, IPV4, IPV6, NULL, LOOP, or a LINKTYPE number')
    .option('-s, --snaplen <bytes>', 'what an accepting program returns (default 262144)')
    .option('-F, --file <file>', 'read the expression from FILE (# starts a comment)')
    .action((words: string[], flags: CompileFlags) => compile(words, flags));
}

function compile(words: string[], flags: CompileFlags): void {
  const level = flags.d || 1;
  if (level > 3) throw new NetpdError('EINVAL', 'give one of -d, -dd, -ddd');
  const expr = expression(words, flags.file);
  if (expr === '') throw new NetpdError('EINVAL', 'compile needs an expression (or -F FILE)');
  if (flags.read !== undefined && flags.linktype !== undefined) throw new NetpdError('EINVAL', 'give -r FILE or -y LINKTYPE, not both');
  const file = flags.read === undefined ? undefined : fileLinkType(flags.read);
  const program = compileFilter(expr, {
    optimize: flags.optimize !== false,
    ...(file ? { ...file, savefile: true } : { linkType: linkType(flags.linktype) }),
    snaplen: flags.snaplen === undefined ? undefined : positive(flags.snaplen, '-s', 'snapshot length in bytes'),
  });
  process.stdout.write(formatProgram(program, (['d', 'dd', 'ddd'] as const)[level - 1]));
}
