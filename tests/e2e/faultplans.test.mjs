// Fault plans end to end: every example plan of docs/fault-injection.md (configs/fault-plans/)
// runs through the real daemon (configs/offload-fault-tests.yaml: retries without jitter), and
// the tests assert, for a fixed seed, the exact number of faults the fake injected
// (/_fake/stats), the retries the daemon made and each task's outcome. Also: the same seed and
// the same requests give the same faults again; PUT /_fake/plan; bad plans are refused with
// their line; record and replay give the daemon byte-identical batch results.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import {
  OFFLOAD_BIN,
  REPO_ROOT,
  TEST_TIMEOUT_MS,
  httpRequest,
  startFake,
  startServer,
  textOf,
  withLogs,
} from './helpers.mjs';

const PLANS = path.join(REPO_ROOT, 'configs', 'fault-plans');
const DAEMON_CONFIG = path.join(REPO_ROOT, 'configs', 'offload-fault-tests.yaml');
const plan = (name) => path.join(PLANS, `${name}.yaml`);

// Fixed prompts: a plan's random choices follow the requests' content, so the expected numbers
// below hold only for exactly these tasks.
const tasks = (n, prefix = 'Write a docstring for function') =>
  Array.from({ length: n }, (_, i) => ({ task: `${prefix} f${i}` }));

// One task's outcome in a form that is easy to compare: "ok/2" is success at the second
// attempt, "timeout/1" a failure with that code.
const outcome = (t) => `${t.status === 'ok' ? 'ok' : t.error.code}/${t.attempts}`;

let dir;
const running = [];

before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'offload-faultplans-'));
});

after(async () => {
  for (const p of running.reverse()) await (p.kill ? p.kill() : p.stop());
  if (dir) rmSync(dir, { recursive: true, force: true });
}, { timeout: TEST_TIMEOUT_MS });

// A fake LLM under `planName` with `seed`, and a daemon in front of it.
async function setup(planName, seed, { slots = 8 } = {}) {
  const fake = await startFake({ slots, args: ['--plan', plan(planName), '--seed', String(seed)] });
  running.push(fake);
  const server = await startServer({ fake, args: ['--config', DAEMON_CONFIG] });
  running.push(server);
  return { fake, server };
}

async function batch(server, list, extra = {}) {
  const result = await server.callTool('batch_offload', { tasks: list, ...extra }, { timeout: 60_000 });
  assert.ok(result.structuredContent, textOf(result));
  return result.structuredContent.tasks;
}

const rule = (stats, name) => stats.plan.rules.find((r) => r.name === name);

// flaky-503 with seed 11 and tasks(20): tasks 0, 2 and 18 fail once and recover on their retry;
// task 5 fails all three attempts. 6 faults, 25 requests.
const FLAKY_SEED = 11;
const FLAKY_OUTCOMES = Array.from({ length: 20 }, (_, i) =>
  i === 5 ? 'backend_overloaded/3' : [0, 2, 18].includes(i) ? 'ok/2' : 'ok/1',
);

test('flaky-503: 10% 503s cost exact retries, and the same seed repeats them', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { fake, server } = await setup('flaky-503', FLAKY_SEED);
  await withLogs([server, fake], async () => {
    const first = (await batch(server, tasks(20))).map(outcome);
    assert.deepEqual(first, FLAKY_OUTCOMES);
    const stats = await fake.stats();
    assert.equal(rule(stats, 'busy').matched, 6);
    assert.equal(stats.requests, 25);
    assert.equal(stats.recent.filter((r) => r.status === 503).length, 6);
    // Which requests got the 503s (in arrival order, which concurrency may shuffle).
    assert.deepEqual(
      stats.recent
        .filter((r) => r.rule === 'busy')
        .map((r) => `${r.prompt.replace('Write a docstring for function ', '')} #${r.attempt}`)
        .sort(),
      ['f0 #1', 'f18 #1', 'f2 #1', 'f5 #1', 'f5 #2', 'f5 #3'],
    );

    // Same seed, same requests (the counters start over): the same tasks fail the same way.
    await fake.resetStats();
    const again = (await batch(server, tasks(20))).map(outcome);
    assert.deepEqual(again, first);
    assert.equal(rule(await fake.stats(), 'busy').matched, 6);
  });
});

test('cold-start: every task meets "Loading model" once and succeeds on its retry', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { fake, server } = await setup('cold-start', 1);
  await withLogs([server, fake], async () => {
    const result = (await batch(server, tasks(8))).map(outcome);
    assert.deepEqual(result, Array(8).fill('ok/2'));
    const stats = await fake.stats();
    assert.equal(rule(stats, 'loading').matched, 8);
    assert.equal(stats.requests, 16);
    // A later batch finds the model loaded.
    assert.deepEqual((await batch(server, tasks(3, 'later'))).map(outcome), Array(3).fill('ok/1'));
  });
});

test('hanging-task: exactly one task hangs until its deadline, the rest answer', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { fake, server } = await setup('hanging-task', 1);
  await withLogs([server, fake], async () => {
    const result = (await batch(server, tasks(6), { task_timeout_ms: 2000 })).map(outcome);
    assert.deepEqual(result.filter((o) => o !== 'ok/1'), ['timeout/1']);
    const stats = await fake.stats();
    assert.equal(rule(stats, 'stuck').matched, 1);
    assert.equal(stats.requests, 6);
    assert.deepEqual(stats.recent.filter((r) => r.rule === 'stuck').map((r) => r.response), ['hang']);
  });
});

test('context-length: long prompts fail at once with context_too_long', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { fake, server } = await setup('context-length', 1);
  await withLogs([server, fake], async () => {
    const long = 'word '.repeat(2500);
    const list = [{ task: 'short one' }, { task: 'long one', context: long }, { task: 'short two' }, { task: 'long two', context: long }];
    const result = await batch(server, list);
    assert.deepEqual(result.map(outcome), ['ok/1', 'context_too_long/1', 'ok/1', 'context_too_long/1']);
    assert.equal(rule(await fake.stats(), 'window').matched, 2);
  });
});

test('dies-mid-batch: after four answers every stream breaks off', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { fake, server } = await setup('dies-mid-batch', 1);
  await withLogs([server, fake], async () => {
    const result = await batch(server, tasks(6), { sequential: true });
    // A dropped stream is retried (the backend may have restarted): three attempts each.
    const dropped = 'connection_dropped/3';
    assert.deepEqual(result.map(outcome), ['ok/1', 'ok/1', 'ok/1', 'ok/1', dropped, dropped]);
    const stats = await fake.stats();
    assert.equal(rule(stats, 'dead').seen, 10);
    assert.equal(rule(stats, 'dead').matched, 6);
  });
});

test('slow-gpu: drawn delays are the same for the same requests in every run', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { fake, server } = await setup('slow-gpu', 11);
  await withLogs([server, fake], async () => {
    const delays = async () => {
      await fake.resetStats();
      const result = await batch(server, tasks(5));
      assert.deepEqual(result.map(outcome), Array(5).fill('ok/1'));
      const stats = await fake.stats();
      assert.equal(rule(stats, 'slow').matched, 5);
      return stats.recent
        .map((r) => `${r.prompt} ${r.latency_ms ?? 0} ${r.first_token_delay_ms} ${r.token_delay_ms}`)
        .sort();
    };
    const first = await delays();
    assert.ok(first.every((line) => / \d+ \d+ 5$/.test(line)), first.join('\n'));
    assert.deepEqual(await delays(), first);
  });
});

test('PUT /_fake/plan swaps the plan; a bad one is a 400 and the old plan stays', { timeout: TEST_TIMEOUT_MS }, async () => {
  const fake = await startFake({ args: ['--plan', plan('flaky-503'), '--seed', '3'] });
  running.push(fake);
  await withLogs([fake], async () => {
    const bad = await fake.putPlan('rules:\n  - match: {probabilty: 0.5}\n    action: {status: 500}\n');
    assert.equal(bad.status, 400);
    assert.match(JSON.parse(bad.body).error, /^PUT \/_fake\/plan:2: unknown key "probabilty" in a match/);
    const regex = await fake.putPlan('rules:\n  - match: {prompt: "(oops"}\n    action: {hang: true}\n');
    assert.equal(regex.status, 400);
    assert.match(JSON.parse(regex.body).error, /:2: prompt: invalid regular expression/);
    let stats = await fake.stats();
    assert.equal(stats.plan.source, plan('flaky-503'));
    assert.equal(stats.plan.seed, 3);

    const swapped = await fake.putPlan(
      'rules:\n  - {name: tags-down, match: {endpoint: /api/tags}, action: {status: 500, message: disk on fire}}\n',
      9,
    );
    assert.equal(swapped.status, 200, swapped.body);
    stats = JSON.parse(swapped.body);
    assert.equal(stats.plan.source, 'PUT /_fake/plan');
    assert.equal(stats.plan.seed, 9);
    const tags = await httpRequest('GET', `${fake.url}/api/tags`);
    assert.equal(tags.status, 500);
    assert.deepEqual(JSON.parse(tags.body), { error: 'disk on fire' });
    assert.equal((await httpRequest('GET', `${fake.url}/api/version`)).status, 200);
    assert.equal(rule(await fake.stats(), 'tags-down').matched, 1);
  });
});

test('bad plan files are refused at start with the file, line and reason', { timeout: TEST_TIMEOUT_MS }, () => {
  const cases = {
    'unknown-key': ['rules:\n  - name: x\n    match:\n      probabilty: 0.5\n    action: {status: 500}\n', ':4: unknown key "probabilty" in a match'],
    'bad-regex': ['rules:\n  - match:\n      prompt: "[a-"\n    action: {hang: true}\n', ':3: prompt: invalid regular expression'],
    probability: ['rules:\n  - match: {probability: 1.5}\n    action: {hang: true}\n', ':2: probability must be between 0 and 1, got 1.5'],
    'unknown-action': ['rules:\n  - action:\n      explode: true\n', ':3: unknown key "explode" in an action'],
  };
  for (const [name, [text, reason]] of Object.entries(cases)) {
    const file = path.join(dir, `${name}.yaml`);
    writeFileSync(file, text);
    const run = spawnSync(OFFLOAD_BIN, ['fakellm', '--plan', file], { encoding: 'utf8', timeout: 10_000 });
    assert.equal(run.status, 2, `${name}: ${run.stderr}`);
    assert.ok(run.stderr.includes(`${file}${reason}`), `${name}: ${run.stderr}`);
    assert.equal(run.stdout, '', `${name} must not start listening`);
  }
});

// The daemon's answer without what a replay at full speed cannot reproduce: durations.
function withoutDurations(result) {
  const copy = structuredClone(result.structuredContent);
  delete copy.totals.duration_ms;
  for (const t of copy.tasks) delete t.duration_ms;
  return JSON.stringify({ text: textOf(result).replace(/\d+ ms/g, 'N ms'), structured: copy });
}

test('record and replay: the replayed batch matches the recorded one byte for byte', { timeout: TEST_TIMEOUT_MS }, async () => {
  const recordings = path.join(dir, 'recordings');
  // The "real" server: a fake with the flaky plan, so the recording holds 503s and retries too.
  const upstream = await startFake({ args: ['--plan', plan('flaky-503'), '--seed', String(FLAKY_SEED)] });
  running.push(upstream);
  // The daemon names its backend in every result; the same name on both runs. No health probes
  // or model discovery: their timing would vary the number of exchanges between the two runs.
  const config = (url) => {
    const file = path.join(dir, `daemon-${url.split(':').pop()}.yaml`);
    writeFileSync(
      file,
      `${readFileSync(DAEMON_CONFIG, 'utf8')}\nbackends:\n  - {name: gpu-box, url: "${url}"}\n` +
        'routing: {health_interval: 0, discovery_interval: 0}\n',
    );
    return file;
  };
  const list = tasks(20);

  const recorder = await startFake({ args: ['--record', recordings, '--upstream', upstream.url] });
  running.push(recorder);
  const recording = await startServer({ fake: recorder, backends: [], args: ['--config', config(recorder.url)] });
  running.push(recording);
  const recorded = await withLogs([recording, recorder, upstream], async () => {
    const result = await recording.callTool('batch_offload', { tasks: list }, { timeout: 60_000 });
    const stats = await recorder.stats();
    const upstreamStats = await upstream.stats();
    assert.equal(stats.record.exchanges, upstreamStats.requests);
    assert.equal(stats.record.failed, 0);
    assert.equal(rule(upstreamStats, 'busy').matched, 6);
    assert.equal(readdirSync(recordings).length, upstreamStats.requests);
    return result;
  });
  await recording.close();
  await recorder.stop();
  await upstream.stop();

  const replayer = await startFake({ args: ['--replay', recordings] });
  running.push(replayer);
  const replaying = await startServer({ fake: replayer, backends: [], args: ['--config', config(replayer.url)] });
  running.push(replaying);
  await withLogs([replaying, replayer], async () => {
    const replayed = await replaying.callTool('batch_offload', { tasks: list }, { timeout: 60_000 });
    assert.equal(withoutDurations(replayed), withoutDurations(recorded));
    assert.deepEqual(replayed.structuredContent.tasks.map(outcome), FLAKY_OUTCOMES);
    const stats = await replayer.stats();
    assert.equal(stats.replay.missing, 0);
    assert.equal(stats.replay.exchanges, 25);

    const missing = await httpRequest('POST', `${replayer.url}/v1/chat/completions`, {
      model: 'qwen2.5-coder:7b',
      messages: [{ role: 'user', content: 'never recorded' }],
    });
    assert.equal(missing.status, 404);
    const error = JSON.parse(missing.body).error;
    assert.equal(error.type, 'not_found_error');
    assert.match(error.message, /no recording of POST \/v1\/chat\/completions \(key [0-9a-f]{20}\)/);
    const put = await replayer.putPlan('rules: []\n');
    assert.equal(put.status, 409);
  });
});

// The raw bytes of a response, and whether its body arrived whole.
async function rawPost(url, body) {
  const res = await fetch(url, { method: 'POST', body: JSON.stringify(body) });
  const chunks = [];
  let whole = true;
  try {
    for await (const chunk of res.body) chunks.push(Buffer.from(chunk));
  } catch {
    whole = false;
  }
  return { status: res.status, retryAfter: res.headers.get('retry-after'), whole, bytes: Buffer.concat(chunks).toString('utf8') };
}

test('record and replay relay OpenAI streams, broken streams and errors byte for byte', { timeout: TEST_TIMEOUT_MS }, async () => {
  const recordings = path.join(dir, 'raw-recordings');
  const upstream = await startFake();
  running.push(upstream);
  const recorder = await startFake({ args: ['--record', recordings, '--upstream', upstream.url] });
  running.push(recorder);
  const requests = [
    ['/v1/chat/completions', { model: 'qwen2.5-coder:7b', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'stream me [[fault=slow_tokens=5]]' }] }],
    ['/v1/chat/completions', { model: 'qwen2.5-coder:7b', stream: true, messages: [{ role: 'user', content: 'a b c d [[fault=drop]]' }] }],
    ['/api/chat', { model: 'qwen2.5-coder:7b', stream: false, messages: [{ role: 'user', content: 'whole body' }] }],
    ['/api/chat', { model: 'qwen2.5-coder:7b', messages: [{ role: 'user', content: 'busy [[fault=http429:retry_after=3]]' }] }],
  ];
  const recorded = await withLogs([recorder, upstream], async () => {
    const out = [];
    for (const [p, body] of requests) out.push(await rawPost(`${recorder.url}${p}`, body));
    assert.deepEqual(out.map((r) => [r.status, r.whole]), [[200, true], [200, false], [200, true], [429, true]]);
    assert.equal(out[3].retryAfter, '3');
    assert.equal((await recorder.stats()).record.exchanges, 4);
    return out;
  });
  await recorder.stop();

  const replayer = await startFake({ args: ['--replay', recordings] });
  running.push(replayer);
  await withLogs([replayer], async () => {
    for (const [i, [p, body]] of requests.entries()) {
      const replayed = await rawPost(`${replayer.url}${p}`, body);
      assert.deepEqual(replayed, recorded[i], `request ${i} (${p})`);
    }
  });

  // An upstream that does not answer: a 502 in the API's shape, and nothing stored.
  const unreachable = await startFake({ args: ['--record', path.join(dir, 'nothing'), '--upstream', 'http://127.0.0.1:1'] });
  running.push(unreachable);
  await withLogs([unreachable], async () => {
    const res = await rawPost(`${unreachable.url}/v1/chat/completions`, requests[0][1]);
    assert.equal(res.status, 502);
    assert.match(JSON.parse(res.bytes).error.message, /^fakellm record: upstream http:\/\/127\.0\.0\.1:1: cannot connect/);
    assert.equal((await unreachable.stats()).record.failed, 1);
    assert.deepEqual(readdirSync(path.join(dir, 'nothing')), []);
  });
});
