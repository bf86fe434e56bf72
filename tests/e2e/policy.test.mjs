// Policies end to end: `offload serve --policy FILE` with an Intercept v1.1.0 policy (hide,
// conditions, on_deny) and with the seed form published for the original server (a rate limit),
// plus `offload policy check`.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { OFFLOAD_BIN, REPO_ROOT, TEST_TIMEOUT_MS, startFake, startServer, textOf, withLogs } from './helpers.mjs';

const dir = mkdtempSync(path.join(tmpdir(), 'offload-policy-'));

function policyFile(name, text) {
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return file;
}

const interceptPolicy = policyFile('intercept.yaml', `version: "1"
description: e2e
hide: [offload_work, compress_context, list_loaded_models, preload_model, pull_model]
tools:
  batch_offload:
    rules:
      - name: no chains
        conditions:
          - path: args.sequential
            op: neq
            value: true
        on_deny: "Sequential batches are not allowed here"
`);

const seedPolicy = policyFile('seed.yaml', `tools:
  batch_offload:
    rules:
      - action: allow
        rate_limit:
          max: 3
          window: 60
`);

// A fresh state directory (policy counters) per server unless one is given to share.
let stateDirs = 0;
function stateDir(name = `state-${stateDirs++}`) {
  return ['--state-dir', path.join(dir, name)];
}

function run(args) {
  return new Promise((resolve) => {
    execFile(OFFLOAD_BIN, args, (error, stdout, stderr) =>
      resolve({ code: error ? error.code : 0, stdout, stderr }));
  });
}

let fake;
before(async () => {
  fake = await startFake({ slots: 4 });
}, { timeout: TEST_TIMEOUT_MS });
after(async () => {
  await fake?.stop();
}, { timeout: TEST_TIMEOUT_MS });

test('an Intercept policy hides tools and denies by condition with its message', { timeout: TEST_TIMEOUT_MS }, async () => {
  const server = await startServer({ fake, args: [...stateDir(), '--policy', interceptPolicy] });
  try {
    await withLogs([server], async () => {
      assert.deepEqual(server.tools.map((t) => t.name), ['batch_offload', 'cost_dashboard', 'get_metrics']);

      const hidden = await server.callTool('offload_work', { task: 'write a test' });
      assert.equal(hidden.isError, true);
      assert.match(textOf(hidden), /^\[POLICY DENIED\] /);
      assert.equal(hidden.structuredContent.policy.rule, '(hidden)');

      const chain = await server.callTool('batch_offload', {
        sequential: true,
        tasks: [{ task: 'one' }, { task: 'two' }],
      });
      assert.equal(chain.isError, true);
      assert.equal(textOf(chain), '[POLICY DENIED] Sequential batches are not allowed here');
      assert.equal(chain.structuredContent.policy.rule, 'no chains');

      // As in Intercept, a condition on a missing path fails (even neq): no `sequential`, denied.
      const missing = await server.callTool('batch_offload', { tasks: [{ task: 'no flag' }] });
      assert.equal(missing.isError, true);
      assert.equal(missing.structuredContent.policy.rule, 'no chains');

      const ok = await server.callTool('batch_offload', {
        sequential: false,
        tasks: [{ task: 'allowed task' }],
      });
      assert.equal(ok.isError, false);
      assert.equal(ok.structuredContent.tasks[0].status, 'ok');
    });
  } finally {
    await server.kill();
  }
});

test('the seed form limits calls: exactly 3 per window, then a denial saying when to retry', { timeout: TEST_TIMEOUT_MS }, async () => {
  const server = await startServer({ fake, args: [...stateDir(), '--policy', seedPolicy] });
  try {
    await withLogs([server], async () => {
      for (let i = 0; i < 3; i++) {
        const r = await server.callTool('batch_offload', { tasks: [{ task: `call ${i}` }] });
        assert.equal(r.isError, false, `call ${i} should be allowed: ${textOf(r)}`);
      }
      const denied = await server.callTool('batch_offload', { tasks: [{ task: 'one too many' }] });
      assert.equal(denied.isError, true);
      assert.match(textOf(denied), /^\[POLICY DENIED\] Rate limit of 3 per minute reached/);
      assert.ok(denied.structuredContent.policy.retry_after_seconds > 0);
      assert.ok(denied.structuredContent.policy.retry_after_seconds <= 60);
      // Tools without rules stay unlimited, and the server keeps answering.
      const other = await server.callTool('offload_work', { task: 'still fine' });
      assert.equal(other.isError, false);
    });
  } finally {
    await server.kill();
  }
});

test('counters survive a restart of the daemon', { timeout: TEST_TIMEOUT_MS }, async () => {
  const shared = stateDir('persisted');
  const first = await startServer({ fake, args: [...shared, '--policy', seedPolicy] });
  try {
    await withLogs([first], async () => {
      for (let i = 0; i < 3; i++)
        assert.equal((await first.callTool('batch_offload', { tasks: [{ task: `t${i}` }] })).isError, false);
    });
  } finally {
    const exit = await first.close();
    assert.equal(exit.code, 0);
  }
  const second = await startServer({ fake, args: [...shared, '--policy', seedPolicy] });
  try {
    await withLogs([second], async () => {
      const denied = await second.callTool('batch_offload', { tasks: [{ task: 'after restart' }] });
      assert.equal(denied.isError, true);
      assert.match(textOf(denied), /Rate limit of 3 per minute reached/);
    });
  } finally {
    await second.kill();
  }
});

test('policy check reports errors with their line and exits 1', { timeout: TEST_TIMEOUT_MS }, async () => {
  // The shipped examples must keep loading.
  for (const file of [interceptPolicy, path.join(REPO_ROOT, 'configs/policies/intercept-example.yaml'),
                      path.join(REPO_ROOT, 'configs/policies/claude-token-saver.yaml')]) {
    const good = await run(['policy', 'check', file]);
    assert.equal(good.code, 0, good.stdout + good.stderr);
    assert.match(good.stdout, /OK \(\d+ tool entries, 0 warning/);
  }
  const bad = policyFile('bad.yaml', `version: "1"
tools:
  batch_offload:
    rules:
      - name: broken
        conditions:
          - path: args.task
            op: regex
            value: "("
`);
  const result = await run(['policy', 'check', bad]);
  assert.equal(result.code, 1);
  assert.match(result.stdout, /bad\.yaml:\d+:/);
  const serve = await run(['serve', '--stdio', '--policy', bad]);
  assert.equal(serve.code, 2);
  assert.match(serve.stderr, /policy file has errors/);
});

// Calls batch_offload until `wanted(result)` holds, for at most `tries` × 100 ms: a reload is
// asynchronous, so the test waits for its effect instead of guessing a delay.
async function callUntil(server, wanted, tries = 80) {
  let last;
  for (let i = 0; i < tries; i++) {
    last = await server.callTool('batch_offload', { tasks: [{ task: `probe ${i}` }] });
    if (wanted(last)) return last;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return last;
}

test('SIGHUP and file changes reload the policy; a bad file keeps the old one', { timeout: TEST_TIMEOUT_MS }, async () => {
  const file = policyFile('reload.yaml', 'version: "1"\ntools:\n  batch_offload:\n    rules: []\n');
  const server = await startServer({ fake, args: [...stateDir(), '--policy', file] });
  try {
    await withLogs([server], async () => {
      const before = await server.callTool('batch_offload', { tasks: [{ task: 'allowed' }] });
      assert.equal(before.isError, false);

      writeFileSync(file, 'version: "1"\ntools:\n  batch_offload:\n    rules:\n' +
                          '      - name: closed\n        action: deny\n        on_deny: "closed for now"\n');
      process.kill(server.pid, 'SIGHUP');
      const denied = await callUntil(server, (r) => r.isError === true);
      assert.equal(textOf(denied), '[POLICY DENIED] closed for now');

      // A broken file is rejected: the deny rule stays in force, and the daemon keeps serving.
      writeFileSync(file, 'version: "1"\ntools:\n  batch_offload:\n    rules:\n      - name: [\n');
      process.kill(server.pid, 'SIGHUP');
      for (let i = 0; i < 50 && !/policy reload \(SIGHUP\) rejected/.test(server.logs()); i++)
        await new Promise((resolve) => setTimeout(resolve, 100));
      await server.ping();
      const still = await server.callTool('batch_offload', { tasks: [{ task: 'x' }] });
      assert.equal(textOf(still), '[POLICY DENIED] closed for now');
      assert.match(server.logs(), /policy reload \(SIGHUP\) rejected/);

      // Editing the file is enough, without a signal.
      writeFileSync(file, 'version: "1"\ntools:\n  batch_offload:\n    rules: []\n');
      const reopened = await callUntil(server, (r) => r.isError === false);
      assert.equal(reopened.isError, false);
    });
  } finally {
    await server.kill();
  }
});

test('the audit log records each decision with an argument hash, never the arguments', { timeout: TEST_TIMEOUT_MS }, async () => {
  const log = path.join(dir, 'audit.jsonl');
  const server = await startServer({ fake, args: [...stateDir(), '--policy', interceptPolicy, '--audit-log', log] });
  const secret = 'sk-do-not-log-0123456789';
  try {
    await withLogs([server], async () => {
      const args = { sequential: false, tasks: [{ task: `use ${secret}` }] };
      assert.equal((await server.callTool('batch_offload', args)).isError, false);
      assert.equal((await server.callTool('offload_work', { task: secret })).isError, true);
    });
  } finally {
    await server.close();
  }
  const text = readFileSync(log, 'utf8');
  assert.ok(!text.includes(secret), 'arguments must never reach the audit log');
  const lines = text.trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, 2);
  assert.equal(lines[0].tool, 'batch_offload');
  assert.equal(lines[0].result, 'allowed');
  assert.match(lines[0].args_hash, /^[0-9a-f]{64}$/);
  assert.equal(lines[1].tool, 'offload_work');
  assert.equal(lines[1].result, 'denied');
  assert.equal(lines[1].rule, '(hidden)');
  assert.equal(lines[1].args_hash,
               createHash('sha256').update(JSON.stringify({ task: secret })).digest('hex'));
});
