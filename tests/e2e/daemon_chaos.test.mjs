// Chaos inside the daemon: with configs/offload-chaos.yaml (`chaos:` on, a fixed seed) offload
// kills some of its own task actors, holds requests back and crashes its backend actor while 8
// batches of 10 tasks run at once against the fake LLM. Every batch must answer, every task with
// its own answer or a clear error (task_killed, or backend_unavailable once its retries ran out);
// no task may be lost or duplicated; /metrics must count every injected fault; the daemon must
// still answer afterwards and exit cleanly; and a second daemon with the same seed must kill the
// same tasks. (tests/e2e/chaos.test.mjs injects faults from the outside, through the fake LLM.)

import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { REPO_ROOT, delay, forEachTask, httpRequest, ownAnswer, startFake, startServer, uniqueToken, withLogs } from './helpers.mjs';

const CONFIG = path.join(REPO_ROOT, 'configs', 'offload-chaos.yaml');
const BATCHES = 8;
const TASKS_PER_BATCH = 10;
// What a task may end with under chaos: killed on purpose, or its backend crashed under each of
// its attempts.
const CHAOS_ERRORS = new Set(['task_killed', 'backend_unavailable']);

let fake;
let first;

// The daemon serves MCP on stdio (so that call numbers, and with them the chaos decisions, follow
// the order the calls are sent in) and HTTP for /metrics. It logs at warn level (the chaos events
// and what they cause), unless OFFLOAD_E2E_LOG_LEVEL asks for another.
async function startChaosDaemon() {
  const level = process.env.OFFLOAD_E2E_LOG_LEVEL ? [] : ['--log-level', 'warn'];
  const server = await startServer({ fake, args: ['--config', CONFIG, '--http', '127.0.0.1:0', ...level] });
  for (let waited = 0; waited < 5000; waited += 50) {
    const m = /listening on (http:\/\/\S+)\/mcp/.exec(server.stderr());
    if (m) return { server, base: m[1] };
    await delay(50);
  }
  await server.kill();
  throw new Error(`no "listening on" line from the daemon\n${server.logs()}`);
}

// Sends the batches at once and checks every answer; returns the tasks killed ("batch/task").
async function runBatches(server) {
  const plans = Array.from({ length: BATCHES }, (_, b) =>
    Array.from({ length: TASKS_PER_BATCH }, (_, i) => uniqueToken(`chaos-${b}-${i}`)),
  );
  const results = await Promise.all(
    plans.map((tokens) => server.callTool('batch_offload', { tasks: tokens.map((t) => ({ task: `Repeat ${t}` })) })),
  );
  const killed = [];
  const answered = new Set();
  const outcomes = { ok: 0, task_killed: 0, backend_unavailable: 0 };
  forEachTask(results, TASKS_PER_BATCH, (t, b, i) => {
    const where = `batch ${b} task ${i}`;
    if (t.status === 'ok') {
      outcomes.ok += 1;
      ownAnswer(answered, t, plans[b][i], where);
      return;
    }
    assert.ok(CHAOS_ERRORS.has(t.error.code), `${where}: unexpected ${t.error.code}: ${t.error.message}`);
    assert.equal(t.error.retryable, true, where);
    outcomes[t.error.code] += 1;
    if (t.error.code === 'task_killed') {
      assert.match(t.error.message, /^chaos: the task was killed on purpose/, where);
      killed.push(`${b}/${i}`);
    }
  });
  return { killed, outcomes };
}

async function metrics(base) {
  const res = await httpRequest('GET', `${base}/metrics`);
  assert.equal(res.status, 200);
  const value = (pattern) => {
    const m = new RegExp(`^${pattern} (\\d+)$`, 'm').exec(res.body);
    assert.ok(m, `/metrics has no ${pattern}`);
    return Number(m[1]);
  };
  return {
    kill_task: value('offload_chaos_events_total\\{kind="kill_task"\\}'),
    delay_message: value('offload_chaos_events_total\\{kind="delay_message"\\}'),
    crash_backend: value('offload_chaos_events_total\\{kind="crash_backend"\\}'),
    tasks_killed: value('offload_tasks_total\\{outcome="task_killed"\\}'),
  };
}

before(async () => {
  fake = await startFake({ slots: 8 });
  first = await startChaosDaemon();
}, { timeout: 60_000 });

after(async () => {
  await first?.server.kill();
  await fake?.stop();
}, { timeout: 60_000 });

let firstKilled;

test(`${BATCHES} concurrent batches under chaos: every task ok or a clear error, every fault counted`, { timeout: 90_000 }, () =>
  withLogs([first.server, fake], async () => {
    const { server, base } = first;
    assert.match(server.stderr(), /CHAOS IS ON: .*kill_task 0\.2, delay_message 0\.3 \(10\.\.200 ms\), crash_backend 0\.05, seed 20261124/);
    const { killed, outcomes } = await runBatches(server);
    firstKilled = killed;
    assert.ok(outcomes.ok > 0 && killed.length > 0, JSON.stringify(outcomes));

    const counted = await metrics(base);
    // Each kill is counted once, as a chaos event and as that task's outcome.
    assert.equal(counted.kill_task, killed.length, JSON.stringify(counted));
    assert.equal(counted.tasks_killed, killed.length, JSON.stringify(counted));
    assert.ok(counted.delay_message > 0, JSON.stringify(counted));
    assert.ok(counted.crash_backend > 0, JSON.stringify(counted));
    // Every injected event is in the log, and the router restarted the backend after each crash.
    // (Counted only while the kept tail of the log is complete, which it is at --log-level warn.)
    const log = server.stderr();
    const lines = (re) => log.split('\n').filter((l) => re.test(l)).length;
    const expect = (re, n) => (log.startsWith('listening on') ? assert.equal(lines(re), n) : assert.ok(lines(re) > 0));
    expect(/chaos: killed task \d+ of batch stdio\/\d+/, counted.kill_task);
    expect(/chaos: delayed the request of task \d+ of batch stdio\/\d+/, counted.delay_message);
    expect(/chaos: crashed backend /, counted.crash_backend);
    expect(/backend ollama@\S+ stopped .*; restarting it/, counted.crash_backend);

    // Still serving: ping, and a call after the storm (which chaos may hit too, but answers).
    await server.ping();
    const later = await server.callTool('offload_work', { task: 'still alive?' });
    assert.equal(later.structuredContent.tasks.length, 1);
    assert.ok(['ok', 'error'].includes(later.structuredContent.tasks[0].status));
    assert.equal((await httpRequest('GET', `${base}/healthz`)).status, 200);
    const exit = await server.close();
    assert.equal(exit.code, 0, `exit after chaos: ${JSON.stringify(exit)}`);
  }));

test('the same seed kills the same tasks in another daemon run', { timeout: 90_000 }, async () => {
  assert.ok(firstKilled, 'the first run did not finish');
  const second = await startChaosDaemon();
  try {
    await withLogs([second.server, fake], async () => {
      const { killed } = await runBatches(second.server);
      assert.deepEqual(killed, firstKilled);
      await second.server.close();
    });
  } finally {
    await second.server.kill();
  }
});
