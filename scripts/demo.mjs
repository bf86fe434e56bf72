// The offload demo: starts `offload serve --stdio` as a real MCP client would (the official
// TypeScript SDK), sends a batch that fans out in parallel with one failing task, then a short
// sequential chain, and prints what the agent would see. With Ollama answering on
// 127.0.0.1:11434 it does real work; otherwise it starts the bundled fake LLM and says so.

import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bin = process.env.OFFLOAD_BIN || path.join(root, 'build', 'offload');
const ollamaUrl = process.env.OLLAMA_BASE_URL || 'http://127.0.0.1:11434';
const forceFake = process.argv.includes('--fake');

function getJson(url, timeoutMs) {
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: timeoutMs }, (res) => {
      let body = '';
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => {
        try {
          resolve(res.statusCode === 200 ? JSON.parse(body) : null);
        } catch {
          resolve(null);
        }
      });
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
  });
}

// Starts the fake LLM and resolves with its URL once it printed its port.
function startFake() {
  const child = spawn(bin, ['fakellm', '--listen', '127.0.0.1:0', '--slots', '4'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    const lines = readline.createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      const m = /^listening on (\S+)$/.exec(line.trim());
      if (m) resolve({ child, url: `http://${m[1]}` });
    });
    child.on('exit', (code) => reject(new Error(`fakellm exited with ${code}`)));
  });
}

function banner(text) {
  const bar = '='.repeat(Math.max(...text.split('\n').map((l) => l.length)));
  console.log(`\n${bar}\n${text}\n${bar}`);
}

async function main() {
  let backendUrl = ollamaUrl;
  let model = process.env.OFFLOAD_DEMO_MODEL || '';
  let fake = null;
  const tags = forceFake ? null : await getJson(`${ollamaUrl}/api/tags`, 1000);
  const real = tags && Array.isArray(tags.models) && tags.models.length > 0;
  if (real) {
    model = model || tags.models[0].name;
    banner(`offload demo: REAL run against Ollama at ${ollamaUrl}, model ${model}`);
  } else {
    fake = await startFake();
    backendUrl = fake.url;
    model = 'qwen2.5-coder:7b';
    banner(
      'offload demo: FAKE LLM\n' +
        `No Ollama with models answered at ${ollamaUrl}, so this demo runs against offload's\n` +
        `bundled fake LLM (${fake.url}). It echoes each prompt back, and the markers in the\n` +
        'tasks below inject latency and faults. Start Ollama and run this again for real work.',
    );
  }

  const transport = new StdioClientTransport({
    command: bin,
    args: ['serve', '--stdio', '--backend', `ollama=${backendUrl}`, '--model', model,
           '--max-concurrency', '4', '--log-level', 'warn'],
    stderr: 'inherit',
  });
  const client = new Client({ name: 'offload-demo', version: '1.0.0' });
  try {
    await client.connect(transport);
    const { tools } = await client.listTools();
    console.log(`\nConnected over stdio. Tools: ${tools.map((t) => t.name).join(', ')}`);

    const slow = real ? '' : ' [[latency=400]]';
    const tasks = [
      { task: `Write a Python function is_palindrome(s) that ignores case.${slow}`, language: 'python' },
      { task: `Write a one-line docstring for: def add(a, b): return a + b${slow}`, language: 'python' },
      { task: `Write a Go function that reverses a slice of ints in place.${slow}`, language: 'go' },
      { task: `Name three edge cases to test for a date parser.${slow}` },
      { task: `Write a bash one-liner that counts lines in all *.cpp files.${slow}`, language: 'bash' },
    ];
    if (!real) tasks.push({ task: 'This task hits a broken backend. [[fault=http500]]' });

    console.log(`\n--- batch_offload: ${tasks.length} tasks in parallel (4 backend slots) ---`);
    const started = Date.now();
    const batch = await client.callTool({ name: 'batch_offload', arguments: { tasks } });
    const wall = Date.now() - started;
    console.log(batch.content[0].text);
    const sum = batch.structuredContent.tasks.reduce((acc, t) => acc + t.duration_ms, 0);
    console.log(`\nWall time ${wall} ms for ${sum} ms of task time: the tasks ran in parallel, ` +
                'and the failing task came back as its own error without sinking the batch.');

    console.log('\n--- batch_offload: a sequential chain (each step sees the previous result) ---');
    const chain = await client.callTool({
      name: 'batch_offload',
      arguments: {
        sequential: true,
        tasks: [
          { task: 'Write a TypeScript interface User with id, name and email.', language: 'typescript' },
          { task: 'Write a function that validates a User from the previous step.', language: 'typescript' },
        ],
      },
    });
    console.log(chain.content[0].text);
  } finally {
    await client.close();
    if (fake) fake.child.kill('SIGTERM');
  }
}

main().catch((err) => {
  console.error(`demo failed: ${err.message}`);
  process.exit(1);
});
