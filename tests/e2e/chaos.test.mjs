// Chaos: 20 concurrent batches of 10 tasks against one daemon, about 30% of the tasks given a
// random fault of every kind through the fake LLM (seeded, so a failure can be replayed). Every
// batch must answer; each faulty task must carry its fault's error code, every good task the
// answer to its own prompt; no task may be lost or duplicated; and the daemon must still answer
// ping afterwards.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { forEachTask, ownAnswer, startFake, startServer, uniqueToken, withLogs } from './helpers.mjs';

const BATCHES = 20;
const TASKS_PER_BATCH = 10;
const FAULT_SHARE = 0.3;
const SEED = Number(process.env.OFFLOAD_CHAOS_SEED || 20261124);

// Each fault and the error code the daemon must report for it. Retryable ones are retried (fast,
// see CONFIG) and still fail, since the fault stays in force; `times=1` ones recover on retry.
const FAULTS = {
  http500: { code: 'backend_http_error' },
  http503: { code: 'backend_overloaded' },
  http429: { code: 'backend_overloaded' },
  notfound: { code: 'model_not_found' },
  malformed: { code: 'malformed_stream' },
  drop: { code: 'connection_dropped' },
  hang: { code: 'timeout' },
  midstream_error: { code: 'backend_error' },
  context_too_long: { code: 'context_too_long' },
  'http503:times=1': { recovers: true },
};

// The hang tasks end at the task deadline, holding a slot until then, so there are enough slots
// for every task at once; retries are quick; 429's Retry-After (1 s) is honoured within the
// deadline.
const SLOTS = 64;
const CONFIG = `
batch:
  task_timeout: 4s
  retry: {max_attempts: 2, base_backoff: 10ms, max_backoff: 50ms}
`;

// mulberry32: a small seeded PRNG, so a failing run can be repeated with OFFLOAD_CHAOS_SEED.
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

let fake;
let server;
let dir;

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'offload-chaos-'));
  fake = await startFake({ slots: SLOTS });
  const config = path.join(dir, 'offload.yaml');
  writeFileSync(config, CONFIG);
  server = await startServer({ fake, args: ['--config', config, '--max-concurrency', String(SLOTS)] });
}, { timeout: 60_000 });

after(async () => {
  await server?.kill();
  await fake?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}, { timeout: 60_000 });

test(`${BATCHES} concurrent batches with ${FAULT_SHARE * 100}% random faults all answer correctly`, { timeout: 120_000 }, () =>
  withLogs([server, fake], async () => {
    const random = prng(SEED);
    const kinds = Object.keys(FAULTS);
    const plans = Array.from({ length: BATCHES }, (_, b) =>
      Array.from({ length: TASKS_PER_BATCH }, (_, i) => {
        const token = uniqueToken(`chaos-${b}-${i}`);
        const fault = random() < FAULT_SHARE ? kinds[Math.floor(random() * kinds.length)] : null;
        return { token, fault, task: `Repeat ${token}${fault ? ` [[fault=${fault}]]` : ''}` };
      }),
    );
    const used = new Set(plans.flat().map((p) => p.fault).filter(Boolean));
    assert.ok(used.size >= 6, `the seed exercises only ${used.size} fault kinds`);

    const results = await Promise.all(
      plans.map((plan) =>
        server.callTool('batch_offload', { tasks: plan.map((p) => ({ task: p.task })) }, { timeout: 60_000 }),
      ),
    );

    let faulty = 0;
    const answered = new Set();
    forEachTask(results, TASKS_PER_BATCH, (t, b, i) => {
      const plan = plans[b][i];
      const where = `batch ${b} task ${i} (${plan.fault ?? 'no fault'})`;
      if (plan.fault && !FAULTS[plan.fault].recovers) {
        faulty += 1;
        assert.equal(t.status, 'error', where);
        assert.equal(t.error.code, FAULTS[plan.fault].code, `${where}: ${t.error.message}`);
      } else {
        assert.equal(t.status, 'ok', `${where}: ${t.error?.code} ${t.error?.message}`);
        // Its own answer, nobody else's.
        ownAnswer(answered, t, plan.token, where);
        if (plan.fault) assert.equal(t.attempts, 2, `${where} should have recovered on its retry`);
      }
    });
    assert.ok(faulty > 0.15 * BATCHES * TASKS_PER_BATCH, `only ${faulty} faulty tasks`);

    await server.ping();
    const after = await server.callTool('offload_work', { task: 'still alive?' });
    assert.equal(after.structuredContent.tasks[0].status, 'ok');
  }));
