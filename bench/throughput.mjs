// Throughput and makespan of offload against the bundled fake LLM, through the whole stack:
// MCP client (official SDK) → stdio → session → coordinator → tasks → backend → HTTP → fakellm.
//
//   node bench/throughput.mjs [--seconds 10] [--concurrency 8] [--slots 64]
//
// Reports tasks per second with a zero-latency fake, the daemon's RSS before and after, and the
// makespan of 100 tasks on 4 slots at 50 ms each against the ideal of 1.25 s. Run by hand; the
// figures go to docs/benchmarks.md. Loopback only.

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bin = process.env.OFFLOAD_BIN || path.join(root, 'build', 'offload');
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const seconds = arg('seconds', 10);
const concurrency = arg('concurrency', 8);
const slots = arg('slots', 64);

function startFake(fakeSlots) {
  const child = spawn(bin, ['fakellm', '--listen', '127.0.0.1:0', '--slots', String(fakeSlots),
                            '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      const m = /^listening on (\S+)$/.exec(line.trim());
      if (m) resolve({ child, url: `http://${m[1]}` });
    });
    child.on('exit', (code) => reject(new Error(`fakellm exited with ${code}`)));
  });
}

async function connect(url, maxConcurrency, maxTasks) {
  const transport = new StdioClientTransport({
    command: bin,
    args: ['serve', '--stdio', '--backend', `ollama=${url}`, '--max-concurrency',
           String(maxConcurrency), '--max-tasks', String(maxTasks), '--log-level', 'warn'],
    stderr: 'inherit',
  });
  const client = new Client({ name: 'offload-bench', version: '1.0.0' });
  await client.connect(transport);
  return { client, pid: transport.pid };
}

function rssKiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)[1]);
}

// CPU seconds (user + system) the process has used so far.
function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks
}

function tasks(n, prefix, marker = '') {
  return Array.from({ length: n }, (_, i) => ({ task: `${prefix} task ${i} ${marker}`.trim() }));
}

async function throughput() {
  const fake = await startFake(0);
  const { client, pid } = await connect(fake.url, slots, 10);
  try {
    // Warm up connections and code paths.
    await client.callTool({ name: 'batch_offload', arguments: { tasks: tasks(10, 'warm') } });
    const rssBefore = rssKiB(pid);
    const cpuBefore = cpuSeconds(pid);
    let done = 0;
    let failed = 0;
    const deadline = Date.now() + seconds * 1000;
    const started = process.hrtime.bigint();
    await Promise.all(Array.from({ length: concurrency }, async (_, worker) => {
      while (Date.now() < deadline) {
        const r = await client.callTool({ name: 'batch_offload',
                                          arguments: { tasks: tasks(10, `w${worker}`) } });
        done += r.structuredContent.totals.ok;
        failed += r.structuredContent.totals.failed;
      }
    }));
    const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
    const rssAfter = rssKiB(pid);
    const cpu = cpuSeconds(pid) - cpuBefore;
    console.log(`throughput: ${done} tasks ok, ${failed} failed in ${elapsed.toFixed(2)} s = ` +
                `${Math.round(done / elapsed)} tasks/s (${concurrency} concurrent batches of 10, ` +
                `${slots} backend slots, zero-latency fake)`);
    console.log(`daemon CPU: ${cpu.toFixed(2)} s for ${done + failed} tasks = ` +
                `${((cpu * 1000) / (done + failed)).toFixed(4)} ms of its own CPU per task`);
    console.log(`daemon RSS: ${rssBefore} KiB after warm-up, ${rssAfter} KiB after the run`);
  } finally {
    await client.close();
    fake.child.kill('SIGTERM');
  }
}

async function makespan() {
  const fake = await startFake(4);
  const { client } = await connect(fake.url, 4, 100);
  try {
    const started = process.hrtime.bigint();
    const r = await client.callTool({ name: 'batch_offload',
                                      arguments: { tasks: tasks(100, 'm', '[[latency=50]]') } });
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    const ideal = (100 / 4) * 50;
    console.log(`makespan: 100 tasks x 50 ms on 4 slots took ${ms.toFixed(0)} ms; ideal ${ideal} ms ` +
                `(+${((ms / ideal - 1) * 100).toFixed(1)}%), ${r.structuredContent.totals.ok} ok`);
  } finally {
    await client.close();
    fake.child.kill('SIGTERM');
  }
}

await throughput();
await makespan();
