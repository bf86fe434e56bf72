// Start-up time and idle memory of `offload serve`, against the bundled fake LLM.
//
//   node bench/startup.mjs [--runs 20]
//
// For each run: spawn `offload serve --stdio --backend ollama=<fake>` with a fresh state
// directory (so the usage ledger is created, as on a first start), write an MCP initialize
// request at once, and time the response; then the same for `--http 127.0.0.1:0` until
// `GET /healthz` answers 200 (the transport is up and the backends were probed). Also the RSS
// once the daemon is idle. Run by hand; the figures go to docs/benchmarks.md. Loopback only.

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bin = process.env.OFFLOAD_BIN || path.join(root, 'build', 'offload');
const i = process.argv.indexOf('--runs');
const runs = i > 0 ? Number(process.argv[i + 1]) : 20;

function startFake() {
  const child = spawn(bin, ['fakellm', '--listen', '127.0.0.1:0', '--log-level', 'warn'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      const m = /^listening on (\S+)$/.exec(line.trim());
      if (m) resolve({ child, url: `http://${m[1]}` });
    });
    child.on('exit', (code) => reject(new Error(`fakellm exited with ${code}`)));
  });
}

const rssKiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
const stop = (child) =>
  new Promise((resolve) => {
    child.on('exit', resolve);
    child.kill('SIGTERM');
  });

async function stdioRun(fake) {
  const state = mkdtempSync(path.join(os.tmpdir(), 'offload-startup-'));
  const started = process.hrtime.bigint();
  const child = spawn(bin, ['serve', '--stdio', '--backend', `ollama=${fake.url}`, '--state-dir', state,
                            '--log-level', 'warn'], { stdio: ['pipe', 'pipe', 'inherit'] });
  child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: {
    protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'bench', version: '1' } } })}\n`);
  const ms = await new Promise((resolve) => {
    readline.createInterface({ input: child.stdout }).once('line', () =>
      resolve(Number(process.hrtime.bigint() - started) / 1e6));
  });
  await new Promise((resolve) => setTimeout(resolve, 300));
  const rss = rssKiB(child.pid);
  child.stdin.end();
  await new Promise((resolve) => child.on('exit', resolve));
  rmSync(state, { recursive: true, force: true });
  return { ms, rss };
}

function healthz(url) {
  return new Promise((resolve) => {
    const req = http.get(`${url}/healthz`, { agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('error', () => resolve(0));
  });
}

async function httpRun(fake) {
  const state = mkdtempSync(path.join(os.tmpdir(), 'offload-startup-'));
  const started = process.hrtime.bigint();
  const child = spawn(bin, ['serve', '--http', '127.0.0.1:0', '--backend', `ollama=${fake.url}`,
                            '--state-dir', state, '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const url = await new Promise((resolve) => {
    readline.createInterface({ input: child.stderr }).on('line', (line) => {
      const m = /^listening on (http:\/\/\S+)\/mcp$/.exec(line);
      if (m) resolve(m[1]);
    });
  });
  while ((await healthz(url)) !== 200);
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  await stop(child);
  rmSync(state, { recursive: true, force: true });
  return { ms };
}

const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return `min ${s[0].toFixed(1)}, p50 ${s[Math.floor(s.length / 2)].toFixed(1)}, max ${s.at(-1).toFixed(1)}`;
};

const fake = await startFake();
try {
  const stdio = [];
  const rss = [];
  const httpTimes = [];
  for (let r = 0; r < runs; r++) {
    const one = await stdioRun(fake);
    stdio.push(one.ms);
    rss.push(one.rss / 1024);
    httpTimes.push((await httpRun(fake)).ms);
  }
  console.log(`stdio: spawn to initialize response, ${runs} runs: ${stats(stdio)} ms`);
  console.log(`http: spawn to /healthz 200 (listening, backends probed), ${runs} runs: ${stats(httpTimes)} ms`);
  console.log(`idle RSS after start-up: ${stats(rss)} MB`);
} finally {
  await stop(fake.child);
}
