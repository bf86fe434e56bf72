// Runs the official MCP conformance suite (@modelcontextprotocol/conformance) against
// `offload serve --http 127.0.0.1:0 --profile conformance`: the active suite, then the pending
// one. Fails unless every scenario of both passes; there is no expected-failures baseline.
//
//   OFFLOAD_BIN=build/offload node_modules/node/bin/node tests/conformance/run.mjs [MODULES_DIR]
//
// MODULES_DIR (default: the repository's node_modules) holds the suite. Run it with Node >= 22
// (the suite needs it; node_modules/node/bin/node is one). Results go to $CONFORMANCE_RESULTS or
// a temporary directory.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const modules = path.resolve(process.argv[2] ?? path.join(root, 'node_modules'));
const suiteCli = path.join(modules, '@modelcontextprotocol/conformance/dist/index.js');
const offload = process.env.OFFLOAD_BIN ?? path.join(root, 'build/offload');
const scratch = mkdtempSync(path.join(os.tmpdir(), 'offload-conformance-'));
const results = process.env.CONFORMANCE_RESULTS ?? path.join(scratch, 'results');

if (Number(process.versions.node.split('.')[0]) < 22) {
  console.error(`conformance: the suite needs Node >= 22; this is ${process.version}`);
  process.exit(2);
}

function startServer() {
  const child = spawn(
    offload,
    ['serve', '--http', '127.0.0.1:0', '--profile', 'conformance', '--state-dir', scratch],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('offload did not start listening')), 15000);
    child.on('exit', (code) => reject(new Error(`offload exited early (${code})`)));
    readline.createInterface({ input: child.stderr }).on('line', (line) => {
      if (process.env.CONFORMANCE_VERBOSE) console.error(`offload: ${line}`);
      const m = /^listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)$/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1] });
      }
    });
  });
}

function runSuite(url, suite) {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      [suiteCli, 'server', '--url', url, '--suite', suite, '-o', path.join(results, suite)],
      { stdio: 'inherit' },
    );
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

let server;
let failed = false;
try {
  server = await startServer();
  for (const suite of ['active', 'pending']) {
    console.log(`\n== conformance suite: ${suite} (${server.url})`);
    const code = await runSuite(server.url, suite);
    if (code !== 0) {
      console.error(`conformance: the ${suite} suite failed (exit ${code})`);
      failed = true;
    }
  }
} catch (e) {
  console.error(`conformance: ${e.message}`);
  failed = true;
} finally {
  if (server) {
    server.child.removeAllListeners('exit');
    server.child.kill('SIGTERM');
  }
  if (!process.env.CONFORMANCE_RESULTS) rmSync(scratch, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
