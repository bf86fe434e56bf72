// The usage ledger end to end: batches are recorded in <state dir>/usage.sqlite; cost_dashboard,
// get_metrics (JSON and Prometheus) and `offload stats` read the same figures, also while the
// daemon runs; SIGTERM still records the cancelled tasks; and the crash test: kill -9 mid-batch,
// restart on the same state directory, and every task whose result was delivered is in the
// ledger exactly once, with the policy counters intact.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';

import { OFFLOAD_BIN, TEST_TIMEOUT_MS, delay, startFake, startServer, textOf, uniqueToken, waitFor, withLogs } from './helpers.mjs';

const dir = mkdtempSync(path.join(tmpdir(), 'offload-ledger-'));
after(() => rmSync(dir, { recursive: true, force: true }));

// The built-in comparison model's list price (USD per million tokens), what a success saved.
const PRICE_IN = 3.0;
const PRICE_OUT = 15.0;

function run(args) {
  return new Promise((resolve) => {
    execFile(OFFLOAD_BIN, args, (error, stdout, stderr) =>
      resolve({ code: error ? error.code : 0, stdout, stderr }));
  });
}

async function stats(stateDir, format) {
  const out = await run(['stats', '--state-dir', stateDir, '--format', format]);
  assert.equal(out.code, 0, `offload stats --format ${format} failed: ${out.stderr}`);
  return out.stdout;
}

async function records(stateDir) {
  const text = await stats(stateDir, 'records');
  return text.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l));
}

function tasks(prefix, n, marker = '') {
  return Array.from({ length: n }, (_, i) => ({ task: `${uniqueToken(`${prefix}-${i}`)} ${marker}`.trim() }));
}

function savedBy(taskResults) {
  return taskResults
    .filter((t) => t.status === 'ok')
    .reduce((sum, t) => sum + (t.tokens_in * PRICE_IN + t.tokens_out * PRICE_OUT) / 1e6, 0);
}

test('batches are recorded; cost_dashboard, get_metrics and offload stats agree', { timeout: TEST_TIMEOUT_MS }, async () => {
  const fake = await startFake({ slots: 4 });
  const stateDir = path.join(dir, 'agree');
  const server = await startServer({ fake, args: ['--state-dir', stateDir] });
  try {
    await withLogs([server, fake], async () => {
      const batch = await server.callTool('batch_offload', {
        tasks: [...tasks('ok', 2), ...tasks('missing', 1, '[[fault=notfound]]')],
      });
      const single = await server.callTool('offload_work', tasks('work', 1)[0]);
      const all = [...batch.structuredContent.tasks, ...single.structuredContent.tasks];
      assert.deepEqual(all.map((t) => t.status), ['ok', 'ok', 'error', 'ok']);

      const dashboard = await server.callTool('cost_dashboard', {});
      assert.equal(dashboard.isError, false);
      const figures = dashboard.structuredContent;
      assert.equal(figures.since, null);
      assert.equal(figures.totals.tasks, 4);
      assert.equal(figures.totals.ok, 3);
      assert.equal(figures.totals.error, 1);
      assert.equal(figures.totals.tokens_in, all.reduce((s, t) => s + t.tokens_in, 0));
      assert.equal(figures.totals.tokens_out, all.reduce((s, t) => s + t.tokens_out, 0));
      assert.ok(figures.totals.saved_usd > 0);
      assert.ok(Math.abs(figures.totals.saved_usd - savedBy(all)) < 1e-5, `saved ${figures.totals.saved_usd}`);
      assert.deepEqual(figures.by_tool.map((g) => [g.tool, g.tasks]), [['batch_offload', 3], ['offload_work', 1]]);
      assert.deepEqual(figures.by_agent.map((g) => [g.agent, g.tasks]), [['', 4]]);
      assert.equal(figures.by_day.length, 1);
      assert.deepEqual(figures.errors_by_code, { model_not_found: 1 });
      assert.match(textOf(dashboard), /tasks: 4 \(3 ok, 1 error, 0 skipped, 0 cancelled\)/);

      const today = await server.callTool('cost_dashboard', { period: 'day' });
      assert.equal(today.structuredContent.totals.tasks, 4);
      assert.equal(today.structuredContent.since, figures.by_day[0].day);

      const prometheus = await server.callTool('get_metrics', { format: 'prometheus' });
      const exposition = textOf(prometheus);
      assert.match(exposition, /^offload_tasks_total\{tool="batch_offload",outcome="ok"\} 2$/m);
      assert.match(exposition, /^offload_tasks_total\{tool="batch_offload",outcome="error"\} 1$/m);
      assert.match(exposition, /^offload_task_errors_total\{code="model_not_found"\} 1$/m);
      assert.match(exposition, new RegExp(`^offload_tokens_total\\{direction="input"\\} ${figures.totals.tokens_in}$`, 'm'));

      const metrics = await server.callTool('get_metrics', {});
      assert.deepEqual(JSON.parse(textOf(metrics)), metrics.structuredContent);
      // The read tools are not tasks: still four.
      assert.equal(metrics.structuredContent.totals.tasks, 4);

      const bad = await server.callTool('get_metrics', { format: 'xml' });
      assert.equal(bad.isError, true);
      assert.match(textOf(bad), /^Invalid arguments for get_metrics: format must be one of/);

      // The command line reads the same ledger while the daemon runs.
      const json = JSON.parse(await stats(stateDir, 'json'));
      assert.deepEqual(json, metrics.structuredContent);
      assert.match(await stats(stateDir, 'table'), /tasks: 4 \(3 ok, 1 error/);
      assert.match(await stats(stateDir, 'prometheus'), /^offload_tasks_total\{tool="offload_work",outcome="ok"\} 1$/m);
      const rows = await records(stateDir);
      assert.deepEqual(rows.map((r) => [r.call_no, r.task_index, r.outcome]).sort(),
        [[1, 0, 'ok'], [1, 1, 'ok'], [1, 2, 'error'], [2, 0, 'ok']]);
      assert.equal(new Set(rows.map((r) => r.run_id)).size, 1);
      assert.deepEqual(rows.find((r) => r.call_no === 1 && r.task_index === 2).error_code, 'model_not_found');
    });
  } finally {
    const exit = await server.close();
    await fake.stop();
    assert.equal(exit.code, 0);
  }
  // And after it stopped.
  assert.equal(JSON.parse(await stats(stateDir, 'json')).totals.tasks, 4);
  const missing = await run(['stats', '--state-dir', path.join(dir, 'never-served')]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no usage ledger at .*never-served\/usage\.sqlite/);
});

test('SIGTERM records the finished and the cancelled tasks before the daemon exits', { timeout: TEST_TIMEOUT_MS }, async () => {
  const fake = await startFake({ slots: 4 });
  const stateDir = path.join(dir, 'sigterm');
  // A short grace period: SIGTERM lets running calls finish for that long, then cancels them.
  const graceConfig = path.join(dir, 'sigterm-grace.yaml');
  writeFileSync(graceConfig, 'shutdown_grace: 300ms\n');
  const server = await startServer({ fake, args: ['--state-dir', stateDir, '--config', graceConfig] });
  try {
    await withLogs([server, fake], async () => {
      const call = server.callTool('batch_offload', { tasks: [...tasks('done', 1), ...tasks('stuck', 1, '[[fault=hang]]')] });
      await waitFor('the hanging request to reach the fake', async () => (await fake.stats()).in_flight >= 1);
      process.kill(server.pid, 'SIGTERM');
      const result = await call;
      assert.deepEqual(result.structuredContent.tasks.map((t) => t.status), ['ok', 'cancelled']);
    });
  } finally {
    await server.kill();
    await fake.stop();
  }
  const rows = await records(stateDir);
  assert.deepEqual(rows.map((r) => [r.task_index, r.outcome]).sort(), [[0, 'ok'], [1, 'cancelled']]);
});

test('kill -9 mid-batch: delivered tasks are in the ledger exactly once and counters survive', { timeout: TEST_TIMEOUT_MS }, async () => {
  const fake = await startFake({ slots: 8 });
  const stateDir = path.join(dir, 'crash');
  // Six batch_offload calls per rolling hour; the counter persists in the same state directory.
  const policy = path.join(dir, 'crash-policy.yaml');
  writeFileSync(policy, 'tools:\n  batch_offload:\n    rules:\n      - action: allow\n        rate_limit: {max: 6, window: 3600}\n');
  const args = ['--state-dir', stateDir, '--policy', policy];
  const first = await startServer({ fake, args });
  const delivered = [];
  try {
    await withLogs([first, fake], async () => {
      // Calls 1 and 2 answer; calls 3 and 4 are running (hanging tasks) when the daemon dies.
      for (const [call, n] of [[1, 3], [2, 2]]) {
        const result = await first.callTool('batch_offload', { tasks: tasks(`call${call}`, n) });
        assert.equal(result.isError, false);
        result.structuredContent.tasks.forEach((t) => delivered.push({ call, ...t }));
      }
      const pending = [
        first.callTool('batch_offload', { tasks: [...tasks('call3', 1), ...tasks('call3-hang', 1, '[[fault=hang]]')] }),
        first.callTool('batch_offload', { tasks: tasks('call4-hang', 2, '[[fault=hang]]') }),
      ];
      pending.forEach((p) => p.catch(() => {})); // they die with the daemon
      await waitFor('the three hanging requests to reach the fake', async () => (await fake.stats()).in_flight >= 3);
      process.kill(first.pid, 'SIGKILL');
      const outcomes = await Promise.allSettled(pending);
      assert.deepEqual(outcomes.map((o) => o.status), ['rejected', 'rejected'], 'no result of calls 3 and 4 was delivered');
    });
  } finally {
    await first.kill();
  }

  // Read while the dead daemon's WAL is still there: the reader recovers it.
  const afterKill = await records(stateDir);
  const key = (r) => `${r.run_id}/${r.session}/${r.call_no}/${r.task_index}`;
  assert.equal(new Set(afterKill.map(key)).size, afterKill.length, 'a task is recorded twice');
  for (const task of delivered) {
    const found = afterKill.filter((r) => r.call_no === task.call && r.task_index === task.index);
    assert.equal(found.length, 1, `call ${task.call} task ${task.index} is recorded ${found.length} times`);
    assert.equal(found[0].outcome, task.status);
    assert.equal(found[0].tokens_in, task.tokens_in);
    assert.equal(found[0].tokens_out, task.tokens_out);
  }
  // Nothing of call 4 finished; of call 3 at most its quick task.
  assert.equal(afterKill.filter((r) => r.call_no === 4).length, 0);
  assert.ok(afterKill.filter((r) => r.call_no === 3).every((r) => r.task_index === 0 && r.outcome === 'ok'));

  const second = await startServer({ fake, args });
  try {
    await withLogs([second, fake], async () => {
      // Four calls were counted before the kill: two of the six remain.
      for (let i = 0; i < 2; i++) {
        const allowed = await second.callTool('batch_offload', { tasks: tasks(`after${i}`, 1) });
        assert.equal(allowed.isError, false, `call ${i} after the restart: ${textOf(allowed)}`);
      }
      const denied = await second.callTool('batch_offload', { tasks: tasks('one-too-many', 1) });
      assert.equal(denied.isError, true);
      assert.match(textOf(denied), /Rate limit of 6/);
      const dashboard = await second.callTool('cost_dashboard', {});
      assert.equal(dashboard.structuredContent.totals.tasks, afterKill.length + 2);
    });
  } finally {
    const exit = await second.close();
    await fake.stop();
    assert.equal(exit.code, 0);
  }
  const final = await records(stateDir);
  assert.equal(new Set(final.map((r) => r.run_id)).size, 2, 'the restart is a new run');
  assert.deepEqual(final.slice(0, afterKill.length), afterKill, 'the first run\'s records are unchanged');
});
