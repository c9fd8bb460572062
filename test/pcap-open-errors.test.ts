// Opening a capture to read or to write: a path that does not exist is ENOENT, a
// directory is EISDIR, a file the system refuses is EACCES, each naming the path (the
// command line prints these as they are; before, all of them were EIO).
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileError } from '../bindings/errors.js';
import { PcapReader, PcapWriter } from '../bindings/pcap/index.js';
import { thrown } from './support/slots.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'netpd-open-errors-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const isRoot = process.getuid?.() === 0;
if (isRoot) console.log('pcap-open-errors: running as root, which reads any file: EACCES is checked on the mapping only');

const ends: [string, (path: string) => unknown][] = [
  ['PcapReader.open', (path) => PcapReader.open(path)],
  ['PcapWriter.create', (path) => PcapWriter.create(path)],
];

for (const [name, open] of ends) {
  describe(name, () => {
    it('in a missing directory is ENOENT naming the path', () => {
      const path = join(dir, 'no-such-dir', 'x.pcap');
      const err = thrown(() => open(path));
      expect(err.code).toBe('ENOENT');
      expect(err.message).toContain(path);
      expect(err.details.path).toBe(path);
    });

    it('on a directory is EISDIR naming it', () => {
      const err = thrown(() => open(dir));
      expect(err.code).toBe('EISDIR');
      expect(err.message).toContain(dir);
      expect(err.message).toMatch(/directory/);
    });
  });
}

describe('PcapReader.open', () => {
  it('on a missing file is ENOENT naming the path', () => {
    const path = join(dir, 'no-such.pcap');
    const err = thrown(() => PcapReader.open(path));
    expect(err.code).toBe('ENOENT');
    expect(err.message).toContain(path);
  });

  it.skipIf(isRoot)('on a file it may not read is EACCES naming it', () => {
    const path = join(dir, 'secret.pcap');
    writeFileSync(path, Buffer.alloc(24));
    chmodSync(path, 0o000);
    const err = thrown(() => PcapReader.open(path));
    expect(err.code).toBe('EACCES');
    expect(err.message).toContain(path);
  });

  it('on something that is not a capture is still EPCAP', () => {
    const path = join(dir, 'text.pcap');
    writeFileSync(path, 'hello, this is not a capture file\n');
    expect(thrown(() => PcapReader.open(path)).code).toBe('EPCAP');
  });
});

describe('PcapWriter.create', () => {
  it.skipIf(isRoot)('in a directory it may not write is EACCES naming the path', () => {
    const sub = join(dir, 'read-only');
    mkdirSync(sub, { mode: 0o500 });
    const err = thrown(() => PcapWriter.create(join(sub, 'out.pcap')));
    expect(err.code).toBe('EACCES');
    expect(err.message).toContain(sub);
  });
});

describe('fileError', () => {
  it('names the path and keeps the cause, with netpd\'s code for each system error', () => {
    const cases: [string, string][] = [['ENOENT', 'ENOENT'], ['EISDIR', 'EISDIR'], ['EACCES', 'EACCES'], ['EPERM', 'EACCES'], ['EMFILE', 'EIO']];
    for (const [sys, code] of cases) {
      const cause = Object.assign(new Error(`${sys}: something`), { code: sys });
      const err = fileError(cause, '/some/file.pcap', 'open');
      expect(err.code).toBe(code);
      expect(err.message).toMatch(/^E[A-Z]+: cannot open \/some\/file\.pcap: /);
      expect(err.cause).toBe(cause);
    }
  });
});
