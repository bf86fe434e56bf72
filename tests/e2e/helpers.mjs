// Shared helpers for the end-to-end tests: start the fake Ollama server (`offload fakellm`) and
// the MCP server (`offload serve --stdio`) as child processes, talk to them, and always kill
// them by PID afterwards. Runs on Node >= 18.19 (Debian 12's nodejs); uses no Node 20-only APIs.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, mkdtempSync, rmSync, constants as fsConstants } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { ErrorCode } from '@modelcontextprotocol/sdk/types.js';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

// A relative OFFLOAD_BIN is taken relative to the current directory, as usual for paths in the
// environment; the default is build/offload in the repository.
export const OFFLOAD_BIN = process.env.OFFLOAD_BIN
  ? path.resolve(process.env.OFFLOAD_BIN)
  : path.join(REPO_ROOT, 'build', 'offload');

// `offload serve` keeps state (the usage ledger, policy counters) in its state directory, by
// default under $XDG_STATE_HOME: servers started without --state-dir get a throw-away one per test
// file, never the user's own. STATE_DIRECTORY (systemd's) would win over it, so it is dropped.
export const SERVER_ENV = (() => {
  const env = { ...process.env, XDG_STATE_HOME: mkdtempSync(path.join(tmpdir(), 'offload-e2e-state-')) };
  delete env.STATE_DIRECTORY;
  return env;
})();

// Optional: OFFLOAD_E2E_LOG_LEVEL=debug passes --log-level debug to `offload serve`.
const SERVE_LOG_LEVEL = process.env.OFFLOAD_E2E_LOG_LEVEL || '';

export const DEFAULT_MODEL = 'qwen2.5-coder:7b';
export const OTHER_MODEL = 'llama3.2:3b';

// Overall limit of one test; a hang fails the test instead of blocking CI.
export const TEST_TIMEOUT_MS = 60_000;
// Limit of one MCP request, below TEST_TIMEOUT_MS so that a stuck call fails with the logs.
// (A server that let one request time out fails the later tests of its file at once, so that a
// stuck server costs one timeout per file and the whole run stays well inside ctest's 300 s.)
export const CALL_TIMEOUT_MS = 30_000;
// How long a process may take to start (print its port, answer initialize) or to exit.
const START_TIMEOUT_MS = 15_000;
const EXIT_TIMEOUT_MS = 15_000;
// Keep only the end of each process's stderr for failure messages.
const MAX_LOG_CHARS = 64 * 1024;

// Every child process still running, so that even an aborted test run kills them.
const live = new Set();
process.on('exit', () => {
  for (const child of live) killByPid(child, 'SIGKILL');
  rmSync(SERVER_ENV.XDG_STATE_HOME, { recursive: true, force: true });
});

function isRunning(child) {
  return child.exitCode === null && child.signalCode === null;
}

function killByPid(child, signal) {
  if (child.pid === undefined || !isRunning(child)) return;
  try {
    process.kill(child.pid, signal);
  } catch {
    // Already gone.
  }
}

function exitPromise(child) {
  if (!isRunning(child)) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
}

export function delay(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Polls `check` every 20 ms until it returns something truthy, and returns that; fails naming
// `what` after `timeoutMs`.
export async function waitFor(what, check, timeoutMs = 10_000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await delay(20);
  }
}

async function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// Waits for exit; SIGTERM, then SIGKILL, if the process does not go by itself.
async function stopChild(child, exited) {
  if (!isRunning(child)) return exited;
  killByPid(child, 'SIGTERM');
  const result = await Promise.race([exited, delay(3000).then(() => null)]);
  if (result) return result;
  killByPid(child, 'SIGKILL');
  return exited;
}

class LogTail {
  constructor() {
    this.text = '';
  }
  append(chunk) {
    this.text += chunk.toString();
    if (this.text.length > MAX_LOG_CHARS) this.text = this.text.slice(-MAX_LOG_CHARS);
  }
  toString() {
    return this.text;
  }
}

function assertBinary() {
  try {
    accessSync(OFFLOAD_BIN, fsConstants.X_OK);
  } catch {
    throw new Error(
      `offload binary not found or not executable: ${OFFLOAD_BIN}. ` +
        'Build it (cmake --build build) or set OFFLOAD_BIN to its path.',
    );
  }
}

// A random token that no other text in a test contains.
export function uniqueToken(prefix) {
  return `${prefix}-${randomBytes(6).toString('hex')}`;
}

// One small HTTP request with node:http (no keep-alive, so no socket outlives the test).
export function httpRequest(method, url, body) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = http.request(
      url,
      {
        method,
        agent: false,
        headers: {
          Connection: 'close',
          ...(payload ? { 'Content-Type': 'application/json', 'Content-Length': payload.length } : {}),
        },
        timeout: 10_000,
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

// One small HTTP request whose body is text as given (e.g. a YAML plan).
export function httpText(method, url, text) {
  return new Promise((resolve, reject) => {
    const payload = Buffer.from(text);
    const req = http.request(
      url,
      {
        method,
        agent: false,
        headers: { Connection: 'close', 'Content-Type': 'application/yaml', 'Content-Length': payload.length },
        timeout: 10_000,
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

// ---- the fake Ollama server ---------------------------------------------------------------------

// Starts `offload fakellm --listen 127.0.0.1:0 --slots N` and waits for "listening on
// 127.0.0.1:PORT" on its stdout.
export async function startFake({ slots = 8, args = [] } = {}) {
  assertBinary();
  const argv = ['fakellm', '--listen', '127.0.0.1:0', '--slots', String(slots), ...args];
  // stdin stays an open pipe: the fake must not depend on it either way.
  const child = spawn(OFFLOAD_BIN, argv, { stdio: ['pipe', 'pipe', 'pipe'] });
  live.add(child);
  const stdout = new LogTail();
  const stderr = new LogTail();
  child.stderr.on('data', (c) => stderr.append(c));
  const exited = exitPromise(child);
  exited.then(() => live.delete(child));
  const describe = () =>
    `offload ${argv.join(' ')} (pid ${child.pid})\n--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}`;

  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`fake LLM did not print "listening on 127.0.0.1:PORT" within ${START_TIMEOUT_MS} ms\n${describe()}`));
    }, START_TIMEOUT_MS);
    const lines = readline.createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      stdout.append(`${line}\n`);
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`could not start the fake LLM: ${err.message}\n${describe()}`));
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`fake LLM exited early (code ${code}, signal ${signal})\n${describe()}`));
    });
  }).catch(async (err) => {
    await stopChild(child, exited);
    throw err;
  });

  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    port,
    pid: child.pid,
    logs: () => describe(),
    async stats() {
      const res = await httpRequest('GET', `${url}/_fake/stats`);
      if (res.status !== 200) throw new Error(`GET /_fake/stats: HTTP ${res.status}: ${res.body}`);
      return JSON.parse(res.body);
    },
    // PUT /_fake/plan: swaps the fault plan; resolves with { status, body }.
    async putPlan(text, seed) {
      return httpText('PUT', `${url}/_fake/plan${seed === undefined ? '' : `?seed=${seed}`}`, text);
    },
    async resetStats() {
      const res = await httpRequest('POST', `${url}/_fake/reset_stats`);
      if (res.status < 200 || res.status > 299)
        throw new Error(`POST /_fake/reset_stats: HTTP ${res.status}: ${res.body}`);
    },
    async stop() {
      return stopChild(child, exited);
    },
  };
}

// ---- the MCP server -----------------------------------------------------------------------------

// StdioClientTransport that exposes the child process it spawned, so that the tests can read its
// exit code and kill it by PID. (The SDK keeps the process in the private field `_process`.)
class ObservedStdioTransport extends StdioClientTransport {
  async start() {
    await super.start();
    const child = this._process;
    if (!child || typeof child.pid !== 'number')
      throw new Error('StdioClientTransport no longer exposes _process; update tests/e2e/helpers.mjs');
    this.child = child;
    this.exited = exitPromise(child);
    live.add(child);
    this.exited.then(() => live.delete(child));
  }
}

// Starts `offload serve --stdio --backend ollama=<fake> ...args`, connects an MCP client to it
// and lists the tools (which makes the SDK validate structuredContent against each tool's
// outputSchema in every later callTool). `backends` are the --backend flags (default: the Ollama
// fake `fake`); `backends: []` or no `fake` leaves the backends to a --config file in `args`.
// `fakes` only add their logs to failure messages.
export async function startServer({
  fake,
  fakes = [],
  args = [],
  backends = fake ? [`ollama=${fake.url}`] : [],
}) {
  assertBinary();
  const argv = ['serve', '--stdio', ...backends.flatMap((b) => ['--backend', b]), ...args];
  if (SERVE_LOG_LEVEL) argv.push('--log-level', SERVE_LOG_LEVEL);
  const stderr = new LogTail();
  // The whole environment, as for the other processes (the SDK would pass only HOME, PATH, ...),
  // so that e.g. sanitizer options reach the server.
  const transport = new ObservedStdioTransport({
    command: OFFLOAD_BIN,
    args: argv,
    env: SERVER_ENV,
    stderr: 'pipe',
  });
  transport.stderr.on('data', (c) => stderr.append(c));
  const client = new Client({ name: 'offload-e2e', version: '0.0.0' });
  // Transport and protocol errors (e.g. a stdout line that is not JSON-RPC) end up here.
  const errors = [];
  client.onerror = (err) => errors.push(err);

  const describe = () =>
    `offload ${argv.join(' ')} (pid ${transport.child?.pid})\n--- stderr ---\n${stderr}` +
    [fake, ...fakes]
      .filter(Boolean)
      .map((f) => `\n--- fake LLM ---\n${f.logs()}`)
      .join('');

  const kill = async () => {
    if (transport.child) await stopChild(transport.child, transport.exited);
  };

  try {
    await client.connect(transport, { timeout: START_TIMEOUT_MS });
  } catch (err) {
    await kill();
    throw new Error(`could not connect to offload serve: ${err.message}\n${describe()}`, { cause: err });
  }
  let tools;
  try {
    tools = (await client.listTools(undefined, { timeout: START_TIMEOUT_MS })).tools;
  } catch (err) {
    await kill();
    throw new Error(`tools/list failed: ${err.message}\n${describe()}`, { cause: err });
  }

  // Set when a request timed out: the server is stuck, later requests fail at once.
  let stuck = null;
  const guarded = async (what, send) => {
    if (stuck) throw new Error(`not sending ${what}: the server stopped answering earlier (${stuck.message})`);
    try {
      return await send();
    } catch (err) {
      if (err?.code === ErrorCode.RequestTimeout) stuck = err;
      throw err;
    }
  };

  return {
    client,
    tools,
    errors,
    pid: transport.child.pid,
    logs: describe,
    // What the server has written to stderr so far (its log).
    stderr: () => stderr.toString(),
    callTool(name, args, options = {}) {
      return guarded(`tools/call ${name}`, () =>
        client.callTool({ name, arguments: args }, undefined, { timeout: CALL_TIMEOUT_MS, ...options }),
      );
    },
    ping() {
      return guarded('ping', () => client.ping({ timeout: CALL_TIMEOUT_MS }));
    },
    // Closes stdin (EOF), waits for the server to exit by itself, then closes the client.
    // Returns { code, signal }.
    async close() {
      const child = transport.child;
      try {
        child.stdin.end();
      } catch {
        // Already closed.
      }
      let result;
      try {
        result = await withTimeout(transport.exited, EXIT_TIMEOUT_MS, 'exit after EOF on stdin');
      } catch {
        result = { code: null, signal: null, timedOut: true };
      }
      await client.close().catch(() => {});
      await kill();
      return result;
    },
    // For after hooks: make sure the process is gone, whatever happened before.
    kill,
  };
}

// Runs `fn`; if it throws, rethrows with the processes' logs appended so that a failure in CI
// shows what the server said.
export async function withLogs(sources, fn) {
  try {
    return await fn();
  } catch (err) {
    const logs = sources
      .filter(Boolean)
      .map((s) => s.logs())
      .join('\n');
    throw new Error(`${err.message}\n\n${logs}`, { cause: err });
  }
}

// ---- reading tool results -----------------------------------------------------------------------

export function textOf(result) {
  const blocks = (result.content ?? []).filter((c) => c.type === 'text');
  if (blocks.length === 0) throw new Error(`tool result has no text content: ${JSON.stringify(result)}`);
  return blocks.map((c) => c.text).join('\n');
}

export function lastLine(text) {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  return lines[lines.length - 1] ?? '';
}

export function wordCount(text) {
  return text.split(/\s+/).filter(Boolean).length;
}

// Checks that every batch result has exactly `perBatch` well-formed tasks (none lost or
// duplicated), then calls `fn(task, b, i)` for task i of batch b.
export function forEachTask(results, perBatch, fn) {
  results.forEach((result, b) => {
    const sc = result.structuredContent;
    assert.ok(sc, `batch ${b} has no structuredContent`);
    assert.equal(sc.tasks.length, perBatch, `batch ${b} lost or duplicated tasks`);
    sc.tasks.forEach((t, i) => {
      checkTaskFields(t, i);
      fn(t, b, i);
    });
  });
}

// Asserts that `task` answered with its own `token`, and (through the set `answered` shared by
// the caller's tasks) that no answer was delivered twice.
export function ownAnswer(answered, task, token, where) {
  assert.ok(task.text.includes(token), `${where} answered ${task.text}`);
  assert.ok(!answered.has(token), `${where}: answer delivered twice`);
  answered.add(token);
}

// Checks the fields every task result has (the SDK already validated the types against the
// outputSchema; this also checks the values that schema cannot express).
export function checkTaskFields(task, index) {
  assert.equal(task.index, index, `tasks[${index}].index`);
  assert.ok(task.status === 'ok' || task.status === 'error', `tasks[${index}].status is ${task.status}`);
  assert.equal(typeof task.model, 'string', `tasks[${index}].model`);
  assert.equal(typeof task.backend, 'string', `tasks[${index}].backend`);
  for (const field of ['tokens_in', 'tokens_out', 'duration_ms']) {
    assert.ok(Number.isInteger(task[field]) && task[field] >= 0, `tasks[${index}].${field} is ${task[field]}`);
  }
  if (task.status === 'ok') {
    assert.equal(typeof task.text, 'string', `tasks[${index}].text`);
  } else {
    assert.ok(task.error, `tasks[${index}] failed without an error object`);
    assert.equal(typeof task.error.code, 'string');
    assert.ok(task.error.message.length > 0, `tasks[${index}].error.message is empty`);
    assert.equal(typeof task.error.retryable, 'boolean');
  }
}

// Checks that totals add up over the tasks.
export function checkTotals(structured) {
  const { tasks, totals } = structured;
  const ok = tasks.filter((t) => t.status === 'ok').length;
  assert.equal(totals.tasks, tasks.length, 'totals.tasks');
  assert.equal(totals.ok, ok, 'totals.ok');
  assert.equal(totals.failed, tasks.length - ok, 'totals.failed');
  assert.equal(totals.tokens_in, tasks.reduce((s, t) => s + t.tokens_in, 0), 'totals.tokens_in');
  assert.equal(totals.tokens_out, tasks.reduce((s, t) => s + t.tokens_out, 0), 'totals.tokens_out');
  assert.ok(Number.isInteger(totals.duration_ms) && totals.duration_ms >= 0, 'totals.duration_ms');
}

// Starts `offload serve --stdio` without the SDK, to speak JSON-RPC line by line (for what the
// SDK client cannot do, such as asking for an older protocol revision). Every stdout line must be
// one JSON-RPC message; lines that are not are kept in `badLines`.
export async function startRawServer({ fake, args = [] }) {
  assertBinary();
  const argv = ['serve', '--stdio', '--backend', `ollama=${fake.url}`, ...args];
  if (SERVE_LOG_LEVEL) argv.push('--log-level', SERVE_LOG_LEVEL);
  const child = spawn(OFFLOAD_BIN, argv, { stdio: ['pipe', 'pipe', 'pipe'], env: SERVER_ENV });
  live.add(child);
  const exited = exitPromise(child);
  exited.then(() => live.delete(child));
  const stderr = new LogTail();
  child.stderr.on('data', (c) => stderr.append(c));
  child.stdin.on('error', () => {}); // EPIPE if the server died; the tests report that.
  const spawnError = new Promise((_, reject) => child.once('error', reject));
  spawnError.catch(() => {});

  const messages = [];
  const badLines = [];
  const waiters = new Map();
  readline.createInterface({ input: child.stdout }).on('line', (line) => {
    let msg;
    try {
      msg = JSON.parse(line);
    } catch {
      badLines.push(line);
      return;
    }
    if (msg === null || typeof msg !== 'object' || msg.jsonrpc !== '2.0') {
      badLines.push(line);
      return;
    }
    messages.push(msg);
    if (msg.id !== undefined && waiters.has(msg.id)) {
      waiters.get(msg.id)(msg);
      waiters.delete(msg.id);
    }
  });

  let nextId = 1;
  const describe = () =>
    `offload ${argv.join(' ')} (pid ${child.pid})\n--- stderr ---\n${stderr}` +
    (badLines.length ? `\n--- non-JSON-RPC stdout lines ---\n${badLines.join('\n')}` : '');

  return {
    pid: child.pid,
    messages,
    badLines,
    logs: describe,
    // Sends a request and resolves with the whole response message ({result} or {error}).
    request(method, params) {
      const id = nextId++;
      const response = new Promise((resolve) => waiters.set(id, resolve));
      child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', id, method, params })}\n`);
      return withTimeout(
        Promise.race([response, spawnError, exited.then(({ code, signal }) => {
          throw new Error(`server exited (code ${code}, signal ${signal}) before answering ${method}`);
        })]),
        // Only lifecycle requests go this way; they need no backend, so the start-up limit fits.
        START_TIMEOUT_MS,
        `response to ${method}`,
      );
    },
    notify(method, params) {
      child.stdin.write(`${JSON.stringify({ jsonrpc: '2.0', method, params })}\n`);
    },
    async close() {
      child.stdin.end();
      try {
        return await withTimeout(exited, EXIT_TIMEOUT_MS, 'exit after EOF on stdin');
      } catch {
        await stopChild(child, exited);
        return { code: null, signal: null, timedOut: true };
      }
    },
    async kill() {
      await stopChild(child, exited);
    },
  };
}

// ---- the MCP server over Streamable HTTP ---------------------------------------------------------

// Starts `offload serve --http 127.0.0.1:0 --backend ollama=<fake> ...args` and waits for its
// "listening on http://127.0.0.1:PORT/mcp" line on stderr. `env` is added to the environment.
// `http: null` leaves --http out. `listenFd` socket-activates the server as systemd does: that
// listening socket becomes its fd 3, with LISTEN_FDS=1 and LISTEN_PID set to the server's own PID
// (which only the shell that execs it knows, as $$).
export async function startHttpServer({ fake, args = [], env = {}, http = '127.0.0.1:0', listenFd } = {}) {
  assertBinary();
  const argv = ['serve', ...(http ? ['--http', http] : []), ...(fake ? ['--backend', `ollama=${fake.url}`] : []), ...args];
  if (SERVE_LOG_LEVEL) argv.push('--log-level', SERVE_LOG_LEVEL);
  // stdin stays an open pipe that nobody writes: without --stdio the server must not read it.
  const stdio = ['pipe', 'pipe', 'pipe'];
  let command = OFFLOAD_BIN;
  let commandArgs = argv;
  let childEnv = { ...process.env, ...env };
  delete childEnv.LISTEN_FDS;
  delete childEnv.LISTEN_PID;
  if (listenFd !== undefined) {
    stdio.push(listenFd);
    command = '/bin/sh';
    commandArgs = ['-c', 'export LISTEN_PID=$$; exec "$0" "$@"', OFFLOAD_BIN, ...argv];
    childEnv = { ...childEnv, LISTEN_FDS: '1' };
  }
  const child = spawn(command, commandArgs, { stdio, env: childEnv });
  live.add(child);
  const exited = exitPromise(child);
  exited.then(() => live.delete(child));
  const stderr = new LogTail();
  const stdout = new LogTail();
  child.stdout.on('data', (c) => stdout.append(c));
  const describe = () =>
    `offload ${argv.join(' ')} (pid ${child.pid})\n--- stderr ---\n${stderr}` +
    (String(stdout) ? `\n--- stdout (must stay empty) ---\n${stdout}` : '') +
    (fake ? `\n--- fake LLM ---\n${fake.logs()}` : '');

  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`offload serve --http did not print its address within ${START_TIMEOUT_MS} ms\n${describe()}`));
    }, START_TIMEOUT_MS);
    readline.createInterface({ input: child.stderr }).on('line', (line) => {
      stderr.append(`${line}\n`);
      const m = /^listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)$/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`could not start offload serve --http: ${err.message}\n${describe()}`));
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`offload serve --http exited early (code ${code}, signal ${signal})\n${describe()}`));
    });
  }).catch(async (err) => {
    await stopChild(child, exited);
    throw err;
  });

  return {
    url,
    base: url.replace(/\/mcp$/, ''),
    pid: child.pid,
    stdout: () => String(stdout),
    // What the server has written to stderr so far (its log).
    stderr: () => String(stderr),
    logs: describe,
    // SIGTERM, then the exit status ({ code, signal, timedOut }).
    async stop() {
      killByPid(child, 'SIGTERM');
      try {
        return await withTimeout(exited, EXIT_TIMEOUT_MS, 'exit after SIGTERM');
      } catch {
        await stopChild(child, exited);
        return { code: null, signal: null, timedOut: true };
      }
    },
    async kill() {
      await stopChild(child, exited);
    },
  };
}

// One HTTP request with full control of the headers (fetch cannot set Host). Resolves with
// { status, headers, body } once the response is complete.
export function rawHttp(url, { method = 'GET', headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const req = http.request(
      url,
      {
        method,
        agent: false,
        headers: { Connection: 'close', ...(payload ? { 'Content-Length': payload.length } : {}), ...headers },
        timeout: 10_000,
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}
