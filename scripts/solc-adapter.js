#!/usr/bin/env node
// solc-adapter: a minimal `solc`-compatible command line over the npm `solc` package
// (solc-js, the official compiler built to WebAssembly), for py-solc-x and forge.
//
//   solc-adapter.js --version
//       prints "solc, the solidity compiler commandline interface\nVersion: <solc.version()>"
//   solc-adapter.js --standard-json [--base-path DIR] [--allow-paths A,B] [--include-path DIR]
//       reads Solidity standard-JSON input on stdin and writes ONLY the standard-JSON output on
//       stdout. Imports are resolved against the base path, the include paths, and every
//       node_modules directory from the base path (and this script's directory) upwards, so
//       "@openzeppelin/contracts/..." resolves to node_modules/@openzeppelin/contracts/....
//       Resolved files must lie under the base path, an include path, an allowed path or a
//       node_modules directory found as above.
//
// Anything the compiler or this script prints besides the JSON goes to stderr.
'use strict';

const fs = require('fs');
const path = require('path');

// solc-js (and its SMT glue) may write chatter with console.log: keep stdout clean for the JSON.
const realStdoutWrite = process.stdout.write.bind(process.stdout);
console.log = (...args) => console.error(...args);
console.info = (...args) => console.error(...args);
console.warn = (...args) => console.error(...args);

function usage(code) {
  process.stderr.write(
    'usage: solc-adapter.js --version | --standard-json [--base-path DIR] ' +
      '[--allow-paths A,B] [--include-path DIR]\n',
  );
  process.exit(code);
}

function parseArgs(argv) {
  const opts = { version: false, standardJson: false, basePath: null, allowPaths: [], includePaths: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const takeValue = () => {
      if (i + 1 >= argv.length) usage(2);
      i += 1;
      return argv[i];
    };
    if (a === '--version' || a === '-v') opts.version = true;
    else if (a === '--standard-json') opts.standardJson = true;
    else if (a === '--base-path') opts.basePath = takeValue();
    else if (a.startsWith('--base-path=')) opts.basePath = a.slice('--base-path='.length);
    else if (a === '--allow-paths') opts.allowPaths.push(...takeValue().split(','));
    else if (a.startsWith('--allow-paths=')) opts.allowPaths.push(...a.slice(14).split(','));
    else if (a === '--include-path') opts.includePaths.push(takeValue());
    else if (a.startsWith('--include-path=')) opts.includePaths.push(a.slice(15));
    else if (a === '-' ) continue; // "read from stdin": implied by --standard-json
    else if (a === '--help' || a === '-h') usage(0);
    else {
      process.stderr.write(`solc-adapter: unsupported argument ${a}\n`);
      usage(2);
    }
  }
  return opts;
}

function nodeModulesUpwards(start) {
  const dirs = [];
  let dir = path.resolve(start);
  for (;;) {
    const nm = path.join(dir, 'node_modules');
    if (fs.existsSync(nm)) dirs.push(nm);
    const parent = path.dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return dirs;
}

function isUnder(file, root) {
  const rel = path.relative(root, file);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

function makeImportCallback(opts) {
  const basePath = path.resolve(opts.basePath || process.cwd());
  const includePaths = opts.includePaths.map((p) => path.resolve(p));
  const nodeModules = [...nodeModulesUpwards(basePath), ...nodeModulesUpwards(__dirname)];
  const searchRoots = [basePath, ...includePaths, ...nodeModules];
  const allowedRoots = [...searchRoots, ...opts.allowPaths.filter((p) => p).map((p) => path.resolve(p))];
  return function findImports(importPath) {
    const candidates = path.isAbsolute(importPath)
      ? [path.resolve(importPath)]
      : searchRoots.map((root) => path.resolve(root, importPath));
    for (const file of candidates) {
      if (!allowedRoots.some((root) => isUnder(file, root))) continue;
      try {
        const real = fs.realpathSync(file);
        if (!fs.statSync(real).isFile()) continue;
        return { contents: fs.readFileSync(real, 'utf8') };
      } catch (_err) {
        // try the next root
      }
    }
    return { error: `File not found: ${importPath} (searched ${searchRoots.join(', ')})` };
  };
}

function readStdin() {
  return new Promise((resolve, reject) => {
    const chunks = [];
    process.stdin.on('data', (c) => chunks.push(c));
    process.stdin.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    process.stdin.on('error', reject);
  });
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const solc = require('solc');
  if (opts.version) {
    realStdoutWrite(
      `solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`,
    );
    return 0;
  }
  if (!opts.standardJson) usage(2);
  const input = await readStdin();
  const output = solc.compile(input, { import: makeImportCallback(opts) });
  // Flush fully before exiting (stdout may be a pipe).
  await new Promise((resolve) => realStdoutWrite(output, resolve));
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`solc-adapter: ${err && err.stack ? err.stack : err}\n`);
    process.exitCode = 1;
  },
);
