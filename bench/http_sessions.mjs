// Many Streamable HTTP sessions against one daemon and the bundled zero-latency fake LLM:
// official SDK clients (StreamableHTTPClientTransport) → offload serve --http → fakellm.
//
//   ulimit -n 16384   # each session holds about two sockets on each side (client and daemon)
//   node bench/http_sessions.mjs [--sessions 1000] [--rounds 5] [--tasks 2] [--samples 300] [--cycles 1]
//
// Reports:
//   - added latency at rest: one session, sequential offload_work calls, against the same
//     request sent straight to the fake (p50/p99 of each, and the difference), once with the SDK
//     client and once as bare HTTP requests (what the daemon alone adds);
//   - added latency under load: every session runs --rounds batch_offload calls of --tasks tasks
//     at once, against the same number of workers calling the fake directly (--tasks requests in
//     parallel per round);
//   - the daemon's RSS per idle session (sessions opened, initialized, GET streams open);
//   - the CPU the daemon and this client used under load (on a small machine the client, 1000 SDK
//     clients in one Node process, is usually the bottleneck);
//   - with --cycles N, the open/load/close part N times, so that RSS shows whether memory is
//     reused (flat) or leaks (growing);
//   - errors of every kind (must be 0).
// Run by hand; the figures go to docs/benchmarks.md. Loopback only.

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bin = process.env.OFFLOAD_BIN || path.join(root, 'build', 'offload');
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const sessions = arg('sessions', 1000);
const rounds = arg('rounds', 5);
const tasksPerBatch = arg('tasks', 2);
const samples = arg('samples', 300);
const cycles = arg('cycles', 1);
const MODEL = 'qwen2.5-coder:7b';
const cores = os.cpus().length;

let errors = 0;
const errorKinds = new Map();
function fail(kind, detail) {
  errors += 1;
  errorKinds.set(kind, (errorKinds.get(kind) ?? 0) + 1);
  if (errorKinds.get(kind) <= 3) console.error(`error (${kind}): ${detail}`);
}

function openFileLimit() {
  const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
  return Number(line.split(/\s+/)[3]);
}

function rssKiB(pid) {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
}

// CPU seconds (user + system) a process has used so far.
function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function summary(latencies) {
  const sorted = [...latencies].sort((a, b) => a - b);
  return { p50: percentile(sorted, 50), p99: percentile(sorted, 99), n: sorted.length };
}

const ms = (x) => `${x.toFixed(2)} ms`;

function startProcess(args, pattern, stream) {
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stderr.on('data', (c) => process.stderr.write(c.toString().split('\n').filter((l) => !pattern.test(l)).join('\n')));
  return new Promise((resolve, reject) => {
    readline.createInterface({ input: child[stream] }).on('line', (line) => {
      const m = pattern.exec(line.trim());
      if (m) resolve({ child, address: m[1] });
    });
    child.on('exit', (code) => reject(new Error(`${args[0]} exited with ${code}`)));
  });
}

// The request the daemon sends for a one-task call, straight to the fake, on kept-alive sockets.
const directAgent = new http.Agent({ keepAlive: true, maxSockets: Infinity });
function directCall(fakeUrl, text) {
  const body = JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: text }], stream: true });
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const req = http.request(`${fakeUrl}/api/chat`, {
      method: 'POST',
      agent: directAgent,
      headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => {
        if (res.statusCode !== 200 || !text.includes('"done":true')) fail('direct', `HTTP ${res.statusCode}`);
        resolve(Number(process.hrtime.bigint() - started) / 1e6);
      });
    });
    req.on('error', (err) => { fail('direct', err.message); reject(err); });
    req.end(body);
  });
}

// tools/call offload_work as one bare HTTP request on a kept-alive socket.
const bareAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
function bareCall(url, session, id, text) {
  const body = JSON.stringify({ jsonrpc: '2.0', id: `bare-${id}`, method: 'tools/call',
                                params: { name: 'offload_work', arguments: { task: text } } });
  return new Promise((resolve) => {
    const started = process.hrtime.bigint();
    const req = http.request(url, {
      method: 'POST',
      agent: bareAgent,
      headers: { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream',
                 'Mcp-Session-Id': session, 'MCP-Protocol-Version': '2025-11-25',
                 'Content-Length': Buffer.byteLength(body) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('end', () => {
        if (res.statusCode !== 200 || !text.includes('"isError":false')) fail('bare', `HTTP ${res.statusCode}: ${text}`);
        resolve(Number(process.hrtime.bigint() - started) / 1e6);
      });
    });
    req.on('error', (err) => { fail('bare', err.message); resolve(0); });
    req.end(body);
  });
}

async function connect(url) {
  const transport = new StreamableHTTPClientTransport(new URL(url));
  const client = new Client({ name: 'offload-bench', version: '1.0.0' });
  const session = { client, transport, closing: false };
  // Closing aborts the client's own GET stream, which the SDK reports as an error: not ours.
  client.onerror = (err) => {
    if (!session.closing) fail('transport', err.message);
  };
  await client.connect(transport, { timeout: 60_000 });
  return session;
}

async function close(session) {
  try {
    await session.transport.terminateSession();
  } catch (err) {
    fail('delete', err.message);
  }
  session.closing = true;
  await session.client.close();
}

async function timedCall(client, name, args) {
  const started = process.hrtime.bigint();
  try {
    const result = await client.callTool({ name, arguments: args }, undefined, { timeout: 120_000 });
    const expected = name === 'batch_offload' ? args.tasks.length : 1;
    if (result.isError || result.structuredContent?.totals?.ok !== expected)
      fail('tool', JSON.stringify(result.structuredContent?.tasks?.map((t) => t.error)));
  } catch (err) {
    fail('call', err.message);
  }
  return Number(process.hrtime.bigint() - started) / 1e6;
}

function tasks(n, prefix) {
  return Array.from({ length: n }, (_, i) => ({ task: `${prefix} task ${i}` }));
}

const limit = openFileLimit();
if (limit < sessions * 4 + 256)
  console.warn(`warning: the open file limit is ${limit}; ${sessions} sessions need about ${sessions * 4} ` +
               '(client and daemon sockets). Raise it first: ulimit -n 16384');

const fake = await startProcess(['fakellm', '--listen', '127.0.0.1:0', '--slots', '0', '--log-level', 'warn'],
                                /^listening on (\S+)$/, 'stdout');
const fakeUrl = `http://${fake.address}`;
const dir = mkdtempSync(path.join(tmpdir(), 'offload-bench-http-'));
const config = path.join(dir, 'offload.yaml');
writeFileSync(config, `http:\n  max_sessions: ${sessions + 16}\n`);
const server = await startProcess(['serve', '--http', '127.0.0.1:0', '--backend', `ollama=${fakeUrl}`,
                                   '--max-concurrency', '64', '--config', config, '--log-level', 'warn'],
                                  /^listening on (http:\S+)$/, 'stderr');
const url = server.address;
const pid = server.child.pid;

try {
  // 1. At rest: one session, one call at a time.
  const probe = await connect(url);
  for (let i = 0; i < 50; i++) {
    await directCall(fakeUrl, `warm ${i}`);
    await timedCall(probe.client, 'offload_work', { task: `warm ${i}` });
  }
  const directRest = [];
  const viaRest = [];
  for (let i = 0; i < samples; i++) {
    directRest.push(await directCall(fakeUrl, `rest task ${i}`));
    viaRest.push(await timedCall(probe.client, 'offload_work', { task: `rest task ${i}` }));
  }
  // The same calls as bare HTTP requests on one kept-alive socket: no SDK on the client side.
  const bare = [];
  for (let i = 0; i < samples; i++)
    bare.push(await bareCall(url, probe.transport.sessionId, i, `rest task ${i}`));
  const d = summary(directRest);
  const v = summary(viaRest);
  const b = summary(bare);
  console.log(`at rest (${samples} sequential one-task calls): direct fake ${ms(d.p50)} p50 / ${ms(d.p99)} p99; ` +
              `through offload with the SDK client ${ms(v.p50)} / ${ms(v.p99)} (added ${ms(v.p50 - d.p50)} / ` +
              `${ms(v.p99 - d.p99)}); as bare HTTP requests ${ms(b.p50)} / ${ms(b.p99)} (added ` +
              `${ms(b.p50 - d.p50)} / ${ms(b.p99 - d.p99)})`);
  await close(probe);

  for (let cycle = 1; cycle <= cycles; cycle++) {
    if (cycles > 1) console.log(`-- cycle ${cycle} of ${cycles}`);
    // 2. Idle sessions.
    await new Promise((r) => setTimeout(r, 500));
    const rssBefore = rssKiB(pid);
    const clients = [];
    const openStarted = Date.now();
    for (let i = 0; i < sessions; i += 100)
      clients.push(...(await Promise.all(Array.from({ length: Math.min(100, sessions - i) }, () => connect(url)))));
    const openSeconds = (Date.now() - openStarted) / 1000;
    await new Promise((r) => setTimeout(r, 1000)); // let every SDK client open its GET stream
    const rssIdle = rssKiB(pid);
    console.log(`opened ${clients.length} sessions in ${openSeconds.toFixed(1)} s; daemon RSS ${rssBefore} KiB before, ` +
                `${rssIdle} KiB with them idle = ${((rssIdle - rssBefore) / clients.length).toFixed(1)} KiB per idle session`);

    // 3. Under load: every session runs its batches at once; the same shape straight to the fake.
    const via = [];
    const daemonCpu = cpuSeconds(pid);
    const clientCpu = process.cpuUsage();
    let started = Date.now();
    await Promise.all(clients.map(async ({ client }, s) => {
      for (let r = 0; r < rounds; r++) via.push(await timedCall(client, 'batch_offload', { tasks: tasks(tasksPerBatch, `s${s} r${r}`) }));
    }));
    const viaSeconds = (Date.now() - started) / 1000;
    const daemonCpuUsed = cpuSeconds(pid) - daemonCpu;
    const clientCpuUsed = (({ user, system }) => (user + system) / 1e6)(process.cpuUsage(clientCpu));
    const direct = [];
    started = Date.now();
    await Promise.all(clients.map(async (_, s) => {
      for (let r = 0; r < rounds; r++) {
        const t0 = process.hrtime.bigint();
        await Promise.all(Array.from({ length: tasksPerBatch }, (__, i) => directCall(fakeUrl, `s${s} r${r} task ${i}`)));
        direct.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
    }));
    const directSeconds = (Date.now() - started) / 1000;
    const vl = summary(via);
    const dl = summary(direct);
    const totalTasks = sessions * rounds * tasksPerBatch;
    console.log(`under load (${sessions} sessions x ${rounds} batches of ${tasksPerBatch}, all at once): ` +
                `direct fake ${ms(dl.p50)} p50 / ${ms(dl.p99)} p99 per round (${directSeconds.toFixed(1)} s); ` +
                `through offload ${ms(vl.p50)} / ${ms(vl.p99)} per batch (${viaSeconds.toFixed(1)} s, ` +
                `${Math.round(totalTasks / viaSeconds)} tasks/s); added ${ms(vl.p50 - dl.p50)} p50 / ${ms(vl.p99 - dl.p99)} p99`);
    console.log(`CPU during the load through offload: daemon ${daemonCpuUsed.toFixed(2)} s ` +
                `(${((daemonCpuUsed * 1000) / totalTasks).toFixed(3)} ms per task), this client ${clientCpuUsed.toFixed(2)} s, ` +
                `in ${viaSeconds.toFixed(1)} s on ${cores} cores`);
    console.log(`daemon RSS after the load: ${rssKiB(pid)} KiB`);

    await Promise.all(clients.map(close));
    await new Promise((r) => setTimeout(r, 500));
    console.log(`daemon RSS after closing every session: ${rssKiB(pid)} KiB`);
  }
} finally {
  console.log(`errors: ${errors}${errors ? ` (${[...errorKinds].map(([k, n]) => `${k}: ${n}`).join(', ')})` : ''}`);
  server.child.kill('SIGTERM');
  fake.child.kill('SIGTERM');
  directAgent.destroy();
  bareAgent.destroy();
}
process.exitCode = errors === 0 ? 0 : 1;
