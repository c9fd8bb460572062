// Re-derives the stored libpcap expectations from the live tools, so the fixtures the
// other tests trust are checked afresh wherever tcpdump, gcc and libpcap-dev exist (CI
// installs them). Without them these tests skip and say why.
import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const missing = [
  has('tcpdump') ? null : 'tcpdump',
  has('gcc') ? null : 'gcc',
  existsSync('/usr/include/pcap/pcap.h') ? null : 'libpcap-dev',
].filter(Boolean);
// The re-derivation takes minutes and does not depend on the Node version running it, so
// CI, which runs the suite on two Node versions, does it once and says so the second time.
const rechecked = process.env.NETPD_REFERENCE_RECHECKED;
const reason = missing.length
  ? `skipped: needs ${missing.join(', ')} (apt-get install tcpdump gcc libpcap-dev)`
  : rechecked ? `skipped: already re-derived from the live tools in this run (${rechecked})` : '';
if (reason) console.log(`reference-live: ${reason}`);

describe.skipIf(reason !== '')('fixtures agree with live libpcap', () => {
  it('the BPF corpus: programs from tcpdump -ddd and accepted sets from bpf_filter and tcpdump', () => {
    const r = spawnSync(process.execPath, ['test/fixtures/bpf/make-bpf-fixtures.mjs', '--check'], { cwd: root, encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
  }, 600_000);

  it('the filter corpus: the generator\'s output, programs in every form, accepted sets and errors', () => {
    for (const script of ['test/fixtures/filter/generate.mjs', 'test/fixtures/filter/make-fixtures.mjs']) {
      const r = spawnSync(process.execPath, [script, '--check'], { cwd: root, encoding: 'utf8' });
      expect(r.status, `${script}: ${r.stdout}${r.stderr}`).toBe(0);
    }
  }, 900_000);

  it('the bundled sample: libpcap verdicts for the default rules', () => {
    const r = spawnSync(process.execPath, ['test/fixtures/sample/make-expected.mjs', '--check'], { cwd: root, encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).toBe(0);
  });

  it('the sample rules are what tcpdump compiles for their expressions', () => {
    const fresh = join(mkdtempSync(join(tmpdir(), 'netpd-rules-')), 'rules.json');
    const rules = spawnSync('sh', ['-c', `sh samples/make-rules.sh ${fresh} >/dev/null && cmp samples/rules.json ${fresh}`], { cwd: root, encoding: 'utf8' });
    expect(rules.status, rules.stdout + rules.stderr).toBe(0);
  });
});
