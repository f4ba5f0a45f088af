// Build steps around tsc for `npm run build` (plain Node, no dependencies):
//   node scripts/dist.cjs clean    removes dist/, so no file of a moved or deleted source lingers;
//   node scripts/dist.cjs assets   copies every file under src/ and migrations/ that tsc
//                                  does not compile (the dashboard's html/css/js, read from disk at
//                                  run time relative to the compiled code) to the same place in dist/;
//   node scripts/dist.cjs check    before start:api / start:worker (npm's pre-scripts): one line
//                                  and exit 1 when dist/ has not been built.
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const dist = path.join(root, 'dist');
const TS = /\.[cm]?ts$/;

function copyAssets(from, to, copied) {
  for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
    const src = path.join(from, entry.name);
    const dest = path.join(to, entry.name);
    if (entry.isDirectory()) copyAssets(src, dest, copied);
    else if (entry.isFile() && !TS.test(entry.name)) {
      fs.mkdirSync(to, { recursive: true });
      fs.copyFileSync(src, dest);
      copied.push(path.relative(root, dest));
    }
  }
}

const step = process.argv[2];
if (step === 'clean') {
  fs.rmSync(dist, { recursive: true, force: true });
} else if (step === 'assets') {
  const copied = [];
  for (const dir of ['src', 'migrations']) copyAssets(path.join(root, dir), path.join(dist, dir), copied);
  process.stdout.write(`copied ${copied.length} asset(s) into dist: ${copied.join(', ')}\n`);
} else if (step === 'check') {
  if (!fs.existsSync(path.join(dist, 'src', 'app', 'main.js'))) {
    process.stderr.write(
      'orderflow: the compiled code is missing (dist/src/app/main.js): run `npm run build` first; start:api and start:worker run it (npm start needs no build)\n',
    );
    process.exit(1);
  }
} else {
  process.stderr.write('usage: node scripts/dist.cjs clean|assets|check\n');
  process.exit(2);
}
