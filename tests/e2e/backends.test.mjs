// Several backends behind one daemon: an Ollama-style fake LLM (models a, b) and an
// OpenAI-style one (models b, c), configured by file. Tasks are routed by model (and alias); an
// unknown model fails listing what exists; list_loaded_models, preload_model and pull_model
// (with progress notifications through the SDK's onprogress); a circuit breaker that opens on
// failures and closes after its cool-down, seen in the log and in /metrics (the daemon serves
// HTTP next to stdio for that); and killing one fake mid-batch moves its tasks to the other.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import {
  TEST_TIMEOUT_MS,
  checkTaskFields,
  httpRequest,
  startFake,
  startServer,
  textOf,
  uniqueToken,
  withLogs,
} from './helpers.mjs';

const OLLAMA = 'gpu-ollama';
const OPENAI = 'laptop-openai';

let ollama;
let openai;
let server;
let dir;

// Fast health probes and a short cool-down, so that state changes show within seconds; quick
// retries with enough attempts to reach the other backend.
function config(ollamaUrl, openaiUrl) {
  return `
default_model: a
batch:
  task_timeout: 15s
  retry: {max_attempts: 4, base_backoff: 50ms, max_backoff: 200ms, jitter: 0}
models:
  aliases: {fast: c}
  options:
    a: {keep_alive: 10m, num_ctx: 8192}
routing:
  health_interval: 200ms
  discovery_interval: 2s
  breaker: {failures: 3, cooldown: 1s}
backends:
  - {name: ${OLLAMA}, kind: ollama, url: "${ollamaUrl}", max_concurrency: 4}
  - {name: ${OPENAI}, kind: openai, url: "${openaiUrl}/v1", max_concurrency: 4}
`;
}

// Polls the server's log until `pattern` shows up (the log is the observable of background
// state changes); fails with the log after `ms`.
async function logShows(pattern, ms = 15_000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (pattern.test(server.stderr())) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`the server log never matched ${pattern}`);
}

// The value of one sample of GET /metrics, e.g. metric('offload_backend_breaker_state', 'b').
async function metrics() {
  const url = /^listening on (http:\/\/127\.0\.0\.1:\d+)\/mcp$/m.exec(server.stderr())?.[1];
  assert.ok(url, 'the daemon did not say where it serves HTTP');
  const res = await httpRequest('GET', `${url}/metrics`);
  assert.equal(res.status, 200);
  return res.body;
}

function sample(text, name, labels) {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
  assert.ok(line, `/metrics has no ${name}{${labels}}`);
  return Number(line.split(' ').pop());
}

// Polls /metrics until `check(text)` holds; fails with the last exposition after `ms`.
async function metricsShow(check, what, ms = 15_000) {
  const deadline = Date.now() + ms;
  let text = '';
  while (Date.now() < deadline) {
    text = await metrics();
    if (check(text)) return text;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`/metrics never showed ${what}:\n${text}`);
}

const breakerOf = (text, name) => sample(text, 'offload_backend_breaker_state', `backend="${name}"`);
const healthOf = (text, name, state) =>
  sample(text, 'offload_backend_health', `backend="${name}",state="${state}"`);

function count(pattern) {
  return (server.stderr().match(new RegExp(pattern.source, 'g')) ?? []).length;
}

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'offload-backends-'));
  ollama = await startFake({ slots: 2, args: ['--api', 'ollama', '--models', 'a,b'] });
  openai = await startFake({ slots: 8, args: ['--api', 'openai', '--models', 'b,c'] });
  const file = path.join(dir, 'offload.yaml');
  writeFileSync(file, config(ollama.url, openai.url));
  server = await startServer({
    fakes: [ollama, openai],
    args: ['--config', file, '--http', '127.0.0.1:0'],
  });
  // Both backends have reported their models.
  await logShows(new RegExp(`backend ${OLLAMA} has 2 model\\(s\\): a, b`));
  await logShows(new RegExp(`backend ${OPENAI} has 2 model\\(s\\): b, c`));
}, { timeout: TEST_TIMEOUT_MS });

after(async () => {
  await server?.kill();
  await ollama?.stop();
  await openai?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, { timeout: TEST_TIMEOUT_MS });

test('a batch is routed by model, aliases included', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server], async () => {
    const token = uniqueToken('route');
    const tasks = [
      { task: `first ${token}`, model: 'a' },
      { task: `second ${token}`, model: 'c' },
      { task: `third ${token}`, model: 'fast' },
      { task: `fourth ${token}` }, // the default model, a
    ];
    const result = await server.callTool('batch_offload', { tasks });
    const sc = result.structuredContent;
    sc.tasks.forEach((t, i) => checkTaskFields(t, i));
    assert.deepEqual(sc.tasks.map((t) => t.status), ['ok', 'ok', 'ok', 'ok'], JSON.stringify(sc.tasks));
    assert.deepEqual(sc.tasks.map((t) => t.backend), [OLLAMA, OPENAI, OPENAI, OLLAMA]);
    // The alias reached the server as the model's real name.
    assert.equal(sc.tasks[2].model, 'c');
    assert.equal(sc.tasks[3].model, 'a');
    const [ollamaStats, openaiStats] = [await ollama.stats(), await openai.stats()];
    assert.equal(ollamaStats.models.a, 2);
    assert.equal(openaiStats.models.c, 2);
  }));

test('an unknown model fails with the models and aliases available', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server], async () => {
    const result = await server.callTool('offload_work', { task: 'x', model: 'no-such-model' });
    const [task] = result.structuredContent.tasks;
    assert.equal(task.error.code, 'model_not_found', JSON.stringify(task.error));
    assert.equal(task.error.retryable, false);
    assert.match(task.error.message, /"no-such-model"/);
    assert.match(task.error.message, /available models: a, b, c/);
    assert.match(task.error.message, /fast -> c/);
  }));

test('list_loaded_models shows what each backend has in memory', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server], async () => {
    const result = await server.callTool('list_loaded_models', {});
    assert.notEqual(result.isError, true, textOf(result));
    const sc = result.structuredContent;
    assert.deepEqual(sc.backends.map((b) => [b.name, b.kind, b.ok]), [
      [OLLAMA, 'ollama', true],
      [OPENAI, 'openai', true],
    ]);
    // The first test generated with a on the Ollama fake, which keeps it loaded.
    const a = sc.models.find((m) => m.name === 'a' && m.backend === OLLAMA);
    assert.ok(a, JSON.stringify(sc.models));
    assert.ok(a.size > 0 && a.expires_at, JSON.stringify(a));
    assert.ok(sc.backends[1].note, 'the OpenAI backend should say what it can report');
    assert.match(textOf(result), /## Loaded models/);
  }));

test('preload_model loads a model on the Ollama backend that has it', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server], async () => {
    const result = await server.callTool('preload_model', { model: 'b', keep_alive: '10m' });
    assert.notEqual(result.isError, true, textOf(result));
    const sc = result.structuredContent;
    assert.equal(sc.model, 'b');
    assert.equal(sc.keep_alive, '10m');
    assert.deepEqual(sc.backends.find((b) => b.name === OLLAMA), { name: OLLAMA, ok: true });
    const loaded = await server.callTool('list_loaded_models', { backend: OLLAMA });
    assert.ok(loaded.structuredContent.models.some((m) => m.name === 'b'), textOf(loaded));

    // A model only an OpenAI-compatible server has: nothing to do, and said so.
    const c = await server.callTool('preload_model', { model: 'fast' });
    assert.notEqual(c.isError, true, textOf(c));
    assert.equal(c.structuredContent.model, 'c');
    assert.match(c.structuredContent.backends[0].note, /loads its models itself/);

    const missing = await server.callTool('preload_model', { model: 'nope' });
    assert.equal(missing.isError, true);
    assert.match(textOf(missing), /model_not_found.*pull_model/s);

    const bad = await server.callTool('preload_model', { model: 'b', keep_alive: 'soon' });
    assert.equal(bad.isError, true);
    assert.match(textOf(bad), /^Invalid arguments for preload_model: keep_alive/);
  }));

test('pull_model relays the download progress as notifications', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server], async () => {
    const updates = [];
    const result = await server.callTool('pull_model', { model: 'b' }, { onprogress: (p) => updates.push(p) });
    assert.notEqual(result.isError, true, textOf(result));
    const sc = result.structuredContent;
    assert.equal(sc.backend, OLLAMA);
    assert.equal(sc.status, 'success');
    assert.ok(sc.total_bytes > 0 && sc.completed_bytes === sc.total_bytes, JSON.stringify(sc));
    assert.ok(updates.length >= 2, `only ${updates.length} progress notification(s)`);
    for (let i = 1; i < updates.length; i += 1)
      assert.ok(updates[i].progress > updates[i - 1].progress, JSON.stringify(updates));
    assert.match(updates[0].message, /pulling/);
    assert.ok(updates.some((u) => u.total > 0), JSON.stringify(updates));

    // A model the registry does not have fails with the server's words.
    const missing = await server.callTool('pull_model', { model: 'nowhere:1b' });
    assert.equal(missing.isError, true);
    assert.match(textOf(missing), /file does not exist/);
  }));

test('failures open a backend\'s circuit breaker, and it closes after the cool-down', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server], async () => {
    const before = await metricsShow((t) => healthOf(t, OLLAMA, 'up') === 1, `${OLLAMA} up`);
    assert.equal(breakerOf(before, OLLAMA), 0);
    assert.equal(sample(before, 'offload_backend_breaker_opened_total', `backend="${OLLAMA}"`), 0);
    const tasks = [1, 2, 3].map((i) => ({ task: `broken ${i} [[fault=http500]]`, model: 'a' }));
    const result = await server.callTool('batch_offload', { tasks });
    // Open (2) right after the third failure, for the 1 s cool-down.
    const open = await metrics();
    assert.equal(breakerOf(open, OLLAMA), 2);
    assert.equal(breakerOf(open, OPENAI), 0);
    for (const t of result.structuredContent.tasks) assert.equal(t.error?.code, 'backend_http_error');
    await logShows(new RegExp(`backend ${OLLAMA}: circuit breaker opened \\(3 failures in a row\\)`));
    // The only backend for a: still used, and said once.
    assert.equal(count(new RegExp(`backend ${OLLAMA} is avoided .* no healthier backend serves a`)), 1);
    // After the cool-down (1 s) the health probe closes it.
    await logShows(new RegExp(`backend ${OLLAMA}: circuit breaker closed`));
    assert.equal(count(/circuit breaker opened/), 1);
    const closed = await metricsShow((t) => breakerOf(t, OLLAMA) === 0, `${OLLAMA}'s breaker closed`);
    assert.equal(sample(closed, 'offload_backend_breaker_opened_total', `backend="${OLLAMA}"`), 1);
    const ok = await server.callTool('offload_work', { task: 'healthy again', model: 'a' });
    assert.equal(ok.structuredContent.tasks[0].status, 'ok');
  }));

test('killing a backend mid-batch moves its tasks to the other one', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server], async () => {
    const token = uniqueToken('failover');
    const tasks = Array.from({ length: 8 }, (_, i) => ({
      task: `[[latency=1500]] move ${i} ${token}`,
      model: 'b',
    }));
    const pending = server.callTool('batch_offload', { tasks });
    // Let both backends start on their share, then kill the Ollama fake outright.
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.ok((await ollama.stats()).in_flight > 0, 'the Ollama fake got no share of the batch');
    process.kill(ollama.pid, 'SIGKILL');
    await ollama.stop();
    const sc = (await pending).structuredContent;
    sc.tasks.forEach((t, i) => checkTaskFields(t, i));
    for (const t of sc.tasks) {
      assert.equal(t.status, 'ok', JSON.stringify(t));
      assert.equal(t.backend, OPENAI, JSON.stringify(t));
      assert.ok(t.text.includes(token));
    }
    assert.ok(sc.tasks.some((t) => t.attempts > 1), 'no task was moved');
    await logShows(new RegExp(`backend ${OLLAMA} is down`));
    const down = await metricsShow((t) => healthOf(t, OLLAMA, 'down') === 1, `${OLLAMA} down`);
    assert.equal(healthOf(down, OLLAMA, 'up'), 0);
    assert.equal(healthOf(down, OPENAI, 'up'), 1);
    // Model a had only that backend: its tasks fail now, with the reason.
    const lost = await server.callTool('offload_work', { task: 'orphan', model: 'a' });
    assert.equal(lost.structuredContent.tasks[0].error?.code, 'backend_unreachable');
    assert.deepEqual(server.errors.map(String), []);
    const exit = await server.close();
    assert.deepEqual(exit, { code: 0, signal: null });
  }));
