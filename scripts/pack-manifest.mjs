// Keeps `prepare` out of the packed package.json (`npm pack`/`npm publish` only).
//
// In the repository `prepare` is the developer's build (WebAssembly core, TypeScript, addon
// from source) that `npm install` runs. In the tarball it has nothing to do — dist/, the
// WebAssembly core and the N-API prebuild are already in it — yet npm 11 lists a dependency's
// `prepare` among the install scripts awaiting approval when the package comes from a file,
// a tarball or git. So `prepack` (after building) runs `strip`, which saves package.json
// beside itself and writes it back without `prepare`, and `postpack` runs `restore`.

import { readFileSync, renameSync, writeFileSync, existsSync } from 'node:fs';

const manifest = new URL('../package.json', import.meta.url);
const saved = new URL('../package.json.prepack', import.meta.url);

const step = process.argv[2];
if (step === 'strip') {
  if (existsSync(saved)) throw new Error(`${saved.pathname} exists: a previous pack did not finish; check package.json and remove it`);
  const text = readFileSync(manifest, 'utf8');
  const pkg = JSON.parse(text);
  delete pkg.scripts.prepare;
  writeFileSync(saved, text);
  writeFileSync(manifest, JSON.stringify(pkg, null, 2) + '\n');
} else if (step === 'restore') {
  if (existsSync(saved)) renameSync(saved, manifest);
} else {
  throw new Error('usage: node scripts/pack-manifest.mjs strip|restore');
}
