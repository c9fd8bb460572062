// Makes the flows.pcap and flows.rules the README's `netpd bench dispatch` example uses:
// N 5-tuple flows (test/support/flows.mjs), a rules file with one pcap-filter expression
// per flow, and a capture of their traffic, 10% of it from flows no rule names.
//
//   node scripts/make-flows.mjs [--flows 1000] [--packets 20000] [--seed N] [--out DIR]
//
// The seed defaults to the number of flows, as in bench/dispatch.mjs, so the default files
// are the ones its 1,000-owner row times.
//
// bench/dispatch.mjs makes its captures with the same functions. Needs the built
// TypeScript (dist/, made by `npm install` or `npm run build:ts`).
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { PcapWriter } from '../dist/index.js';
import { makeFlows, flowExpression, flowTraffic } from '../test/support/flows.mjs';

/** Writes `packets` frames of the flows' traffic as a pcap (1,000 packets a second from 2023-11-14). */
export function writeTraffic(file, flows, packets, seed) {
  const writer = PcapWriter.create(file);
  let i = 0;
  for (const frame of flowTraffic(flows, packets, { seed })) {
    writer.writePacket(frame, { sec: 1_700_000_000 + Math.floor(i / 1000), nsec: (i % 1000) * 1e6, wireLen: 64 });
    i++;
  }
  writer.close();
  return file;
}

/** `count` flows: their rules file (one expression a line) and a capture of `packets` frames of their traffic. */
export function writeFlows({ rules, capture, flows: count, packets, seed }) {
  const flows = makeFlows(count, seed);
  writeFileSync(rules, `${flows.map(flowExpression).join('\n')}\n`);
  return { flows, rules, capture: writeTraffic(capture, flows, packets, seed) };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: { flows: { type: 'string', default: '1000' }, packets: { type: 'string', default: '20000' }, seed: { type: 'string' }, out: { type: 'string', default: '.' } },
  });
  values.seed ??= values.flows;
  const number = (name) => {
    const v = Number(values[name]);
    if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} takes a positive integer, got "${values[name]}"`);
    return v;
  };
  const made = writeFlows({ rules: join(values.out, 'flows.rules'), capture: join(values.out, 'flows.pcap'), flows: number('flows'), packets: number('packets'), seed: number('seed') });
  console.log(`${made.rules}: ${made.flows.length} rules; ${made.capture}: ${number('packets')} packets`);
}
