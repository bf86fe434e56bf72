// The batch engine end to end: retries that recover, stop_on_error, compress_context, progress
// notifications, cancellation mid-batch (the fake LLM sees its requests aborted), and SIGTERM
// answering a running call with cancelled tasks. One fake LLM; servers with fast retries.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { TEST_TIMEOUT_MS, delay, startFake, startServer, textOf, uniqueToken, waitFor, withLogs } from './helpers.mjs';

let fake;
let server;
let dir;

// Fast retries so that a test of three attempts takes milliseconds, and short task deadlines.
const CONFIG = `
batch:
  task_timeout: 20s
  retry: {max_attempts: 3, base_backoff: 20ms, max_backoff: 100ms, jitter: 0}
`;

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'offload-engine-'));
  const config = path.join(dir, 'offload.yaml');
  writeFileSync(config, CONFIG);
  fake = await startFake({ slots: 8 });
  server = await startServer({ fake, args: ['--config', config, '--max-concurrency', '4'] });
}, { timeout: TEST_TIMEOUT_MS });

after(async () => {
  await server?.kill();
  await fake?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, { timeout: TEST_TIMEOUT_MS });

test('a busy backend is retried until it answers, and the result counts the attempts', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server, fake], async () => {
    const token = uniqueToken('retry');
    const result = await server.callTool('offload_work', { task: `say ${token} [[fault=http503:times=2]]` });
    assert.notEqual(result.isError, true, textOf(result));
    const [task] = result.structuredContent.tasks;
    assert.equal(task.status, 'ok');
    assert.equal(task.attempts, 3);
    assert.match(task.text, new RegExp(token));
  }));

test('errors that retrying cannot fix are not retried', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server, fake], async () => {
    const result = await server.callTool('offload_work', { task: 'x [[fault=context_too_long]]' });
    assert.equal(result.isError, true);
    const [task] = result.structuredContent.tasks;
    assert.equal(task.error.code, 'context_too_long');
    assert.equal(task.attempts, 1);
    assert.match(textOf(result), /\[FALLBACK_TO_CLOUD\].*context window/);
  }));

test('stop_on_error ends a sequential chain at the first failure', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server, fake], async () => {
    const tasks = [{ task: 'one' }, { task: 'two [[fault=notfound]]' }, { task: 'three' }, { task: 'four' }];
    const result = await server.callTool('batch_offload', { tasks, sequential: true, stop_on_error: true });
    const statuses = result.structuredContent.tasks.map((t) => t.status);
    assert.deepEqual(statuses, ['ok', 'error', 'skipped', 'skipped']);
    assert.equal(result.structuredContent.totals.skipped, 2);
    assert.equal(result.structuredContent.tasks[2].error.code, 'skipped');
  }));

test('stop_on_error without sequential is an argument error the agent can fix', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server], async () => {
    const result = await server.callTool('batch_offload', { tasks: [{ task: 'a' }], stop_on_error: true });
    assert.equal(result.isError, true);
    assert.match(textOf(result), /stop_on_error: only applies to sequential batches/);
  }));

test('deadline overrides beyond the configured maximum are refused with the limit', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server], async () => {
    const result = await server.callTool('offload_work', { task: 'a', task_timeout_ms: 10 ** 9 });
    assert.equal(result.isError, true);
    assert.match(textOf(result), /task_timeout_ms: .* is more than the configured maximum of \d+/);
  }));

test('compress_context summarises on the same engine and says when it had to cut', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server], async () => {
    const small = await server.callTool('compress_context', { content: 'a short note', target_length: 100 });
    assert.notEqual(small.isError, true, textOf(small));
    assert.equal(small.structuredContent.tasks[0].status, 'ok');
    assert.equal(small.structuredContent.tasks[0].warnings, undefined);

    const huge = await server.callTool('compress_context', { content: 'word '.repeat(20_000) });
    assert.notEqual(huge.isError, true, textOf(huge));
    const [task] = huge.structuredContent.tasks;
    assert.equal(task.warnings.length, 1);
    assert.match(task.warnings[0], /100000 characters/);
    assert.match(textOf(huge), /\[WARNING\] .*not seen by the model/);

    const bad = await server.callTool('compress_context', { target_length: 10 });
    assert.equal(bad.isError, true);
    assert.match(textOf(bad), /content: required field is missing/);
  }));

test('a progress token brings one notification per finished task, strictly increasing', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server], async () => {
    const seen = [];
    const tasks = Array.from({ length: 5 }, (_, i) => ({ task: `p${i} [[latency=${20 * i}]]` }));
    const result = await server.client.callTool({ name: 'batch_offload', arguments: { tasks } }, undefined, {
      timeout: 30_000,
      onprogress: (p) => seen.push(p),
    });
    assert.notEqual(result.isError, true);
    // The SDK runs notification handlers a microtask later than it settles the response, so the
    // last notification (sent before the response) may reach a handler that is already gone.
    const values = seen.map((p) => p.progress);
    assert.deepEqual(values, [1, 2, 3, 4, 5].slice(0, values.length));
    assert.ok(values.length >= 4, `only ${values.length} progress notifications`);
    assert.ok(seen.every((p) => p.total === 5));
    assert.match(seen[3].message, /4 of 5 tasks done/);
  }));

test('cancelling mid-batch aborts the requests at the LLM and the server keeps serving', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server, fake], async () => {
    await fake.resetStats();
    const controller = new AbortController();
    const tasks = Array.from({ length: 8 }, (_, i) => ({ task: `c${i} [[fault=hang]]` }));
    const call = server.client.callTool({ name: 'batch_offload', arguments: { tasks } }, undefined, {
      timeout: 30_000,
      signal: controller.signal,
    });
    // Four slots: four requests at the LLM, four queued in the daemon.
    await waitFor('4 requests in flight at the fake LLM', async () => (await fake.stats()).in_flight === 4);
    controller.abort('test cancels');
    await assert.rejects(call);
    await waitFor('the aborted requests to leave the fake LLM', async () => (await fake.stats()).in_flight === 0);
    // Queued tasks are dropped, not started; one whose task had not stopped yet when a slot freed
    // may still slip through, but never all of them.
    const requests = (await fake.stats()).requests;
    assert.ok(requests < tasks.length, `${requests} of ${tasks.length} tasks reached the LLM`);
    const after = await server.callTool('offload_work', { task: 'still here' });
    assert.equal(after.structuredContent.tasks[0].status, 'ok');
  }));

test('SIGTERM drains: a running call finishes within the grace period, then the daemon exits 0', { timeout: TEST_TIMEOUT_MS }, async () => {
  const config = path.join(dir, 'grace.yaml');
  writeFileSync(config, 'shutdown_grace: 10s\n');
  const own = await startServer({ fake, args: ['--config', config] });
  await withLogs([own, fake], async () => {
    const call = own.callTool('batch_offload', { tasks: [{ task: 'a' }, { task: 'slow [[latency=800]]' }] });
    await waitFor('the slow request to reach the fake', async () => (await fake.stats()).in_flight >= 1);
    process.kill(own.pid, 'SIGTERM');
    const result = await call;
    assert.deepEqual(result.structuredContent.tasks.map((t) => t.status), ['ok', 'ok']);
  });
  await own.kill();
});

test('after the grace period the rest is cancelled and still answered', { timeout: TEST_TIMEOUT_MS }, async () => {
  const config = path.join(dir, 'short-grace.yaml');
  writeFileSync(config, 'shutdown_grace: 300ms\n');
  const own = await startServer({ fake, args: ['--config', config] });
  await withLogs([own, fake], async () => {
    const call = own.callTool('batch_offload', { tasks: [{ task: 'done' }, { task: 'slow [[fault=hang]]' }] });
    await waitFor('the hanging request to reach the fake', async () => (await fake.stats()).in_flight >= 1);
    process.kill(own.pid, 'SIGTERM');
    const result = await call;
    assert.deepEqual(result.structuredContent.tasks.map((t) => t.status), ['ok', 'cancelled']);
    assert.equal(result.structuredContent.tasks[1].error.code, 'cancelled');
  });
  await own.kill();
});
