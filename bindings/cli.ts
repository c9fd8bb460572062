#!/usr/bin/env node
// The netpd command, with tcpdump's habits: -r FILE, -i IFACE, -c COUNT, -w FILE, -F FILE,
// -n, -s, -p, -B, -Q, -y, -D, -O. One file per verb under cli/:
//
//   netpd run       a capture or a live interface dispatched to owners, their counters
//   netpd filter    the positions of the packets a filter accepts (-v: the packets, -w: written)
//   netpd compile   the program, as tcpdump -d/-dd/-ddd prints it
//   netpd send      a capture replayed onto an interface
//   netpd bench dispatch   a dispatcher timed over your own rules
//
// Exit status: 0 done; 1 a NetpdError (`netpd: CODE: message` on stderr), printed after
// whatever was done before it (the packets before a damaged record); 2 a command line
// commander cannot parse — an unknown verb or flag, a missing value — with one line
// saying what, and a usage hint. `netpd help VERB` and `netpd VERB --help` print the
// verb's usage and exit 0; -V prints the version.

import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { NetpdError } from './errors.js';
import { runCommand } from './cli/run.js';
import { filterCommand } from './cli/filter.js';
import { compileCommand } from './cli/compile.js';
import { sendCommand } from './cli/send.js';
import { benchCommand } from './cli/bench.js';

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

/** Exit status for a command line that does not parse. */
const USAGE_ERROR = 2;

function program(): Command {
  const netpd = new Command('netpd')
    .description('A packet dispatcher for Node.js, with tcpdump\'s habits. Without -r and -i, `netpd run` dispatches the bundled sample.')
    .version(version, '-V, --version', 'print the version')
    .addCommand(runCommand())
    .addCommand(filterCommand())
    .addCommand(compileCommand())
    .addCommand(sendCommand())
    .addCommand(benchCommand());
  configure(netpd);
  return netpd;
}

/** On every command: commander's errors as `netpd: ...` and a usage hint for that verb; exit codes thrown, not exited. */
function configure(cmd: Command): void {
  const path: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) path.unshift(c.name());
  cmd
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(`netpd: ${text.replace(/^error: /, '')}`) })
    .showHelpAfterError(`usage: ${path.join(' ')} ${cmd.usage()}\n(${path.length > 1 ? `netpd help ${path.slice(1).join(' ')}` : 'netpd --help'} lists the options)`);
  for (const sub of cmd.commands) configure(sub);
}

/**
 * `-O0` is tcpdump's old spelling of -O (no optimizer); commander would read it as -O -0.
 * `help bench dispatch` is `bench dispatch --help` (commander's help takes one verb).
 */
function tcpdumpSpellings(argv: string[]): string[] {
  const args = argv.map((a) => (a === '-O0' ? '-O' : a));
  return args[0] === 'help' && args.length > 2 ? [...args.slice(1), '--help'] : args;
}

async function main(argv: string[]): Promise<number> {
  const netpd = program();
  if (argv.length === 0) {
    process.stderr.write(netpd.helpInformation());
    return USAGE_ERROR;
  }
  try {
    await netpd.parseAsync(tcpdumpSpellings(argv), { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : USAGE_ERROR;
    throw err;
  }
  return 0;
}

// Output piped into `head` and closed early is the reader's choice, not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
  process.exit(0);
});

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err: unknown) => {
    if (!(err instanceof NetpdError)) throw err;
    process.stderr.write(`netpd: ${err.message}\n`);
    process.exitCode = 1;
  },
);
