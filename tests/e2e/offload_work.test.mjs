// offload_work end to end: one task, ok or failing, against `offload serve --stdio
// --task-timeout 2s` and a fake LLM.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  DEFAULT_MODEL,
  OTHER_MODEL,
  TEST_TIMEOUT_MS,
  checkTaskFields,
  checkTotals,
  startFake,
  startServer,
  textOf,
  uniqueToken,
  withLogs,
} from './helpers.mjs';

let fake;
let server;

before(async () => {
  fake = await startFake({ slots: 4 });
  server = await startServer({ fake, args: ['--task-timeout', '2s'] });
}, { timeout: TEST_TIMEOUT_MS });

after(async () => {
  await server?.kill();
  await fake?.stop();
}, { timeout: TEST_TIMEOUT_MS });

// Calls offload_work and checks the parts every result shares; returns [result, task].
async function work(args) {
  const result = await server.callTool('offload_work', args);
  const sc = result.structuredContent;
  assert.ok(sc, `structuredContent is missing: ${JSON.stringify(result)}`);
  assert.equal(sc.tasks.length, 1);
  checkTaskFields(sc.tasks[0], 0);
  checkTotals(sc);
  return [result, sc.tasks[0]];
}

test('offload_work runs one task', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server], async () => {
    const token = uniqueToken('work-ok');
    const [result, task] = await work({ task: `Write a docstring mentioning ${token}`, language: 'python' });
    assert.notEqual(result.isError, true);
    assert.equal(task.status, 'ok', JSON.stringify(task.error));
    assert.ok(task.text.includes(token), `text lacks the token: ${task.text}`);
    assert.equal(task.model, DEFAULT_MODEL);
    assert.ok(task.tokens_out > 0);
    assert.equal(result.structuredContent.totals.ok, 1);
    assert.ok(textOf(result).includes(token), 'the text content lacks the answer');
  }));

test('offload_work uses the model the task names', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server], async () => {
    const token = uniqueToken('work-model');
    const [result, task] = await work({ task: `Echo ${token}`, model: OTHER_MODEL });
    assert.notEqual(result.isError, true);
    assert.equal(task.status, 'ok', JSON.stringify(task.error));
    assert.equal(task.model, OTHER_MODEL);
    assert.ok(task.text.includes(token));
  }));

test('a task that hangs past --task-timeout fails with timeout', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server], async () => {
    const [result, task] = await work({ task: `[[fault=hang]] ${uniqueToken('work-hang')}` });
    assert.equal(task.status, 'error');
    assert.equal(task.error.code, 'timeout', JSON.stringify(task.error));
    assert.equal(result.isError, true, 'the only task failed, so isError must be true');
    assert.equal(result.structuredContent.totals.failed, 1);
  }));

test('an unknown model fails with model_not_found', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server], async () => {
    const [result, task] = await work({ task: `Echo ${uniqueToken('work-nomodel')}`, model: 'no-such-model' });
    assert.equal(task.status, 'error');
    assert.equal(task.error.code, 'model_not_found', JSON.stringify(task.error));
    assert.equal(task.error.retryable, false);
    assert.equal(result.isError, true);
  }));

test('a 404 from the backend fails with model_not_found', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server], async () => {
    const [result, task] = await work({ task: `[[fault=notfound]] ${uniqueToken('work-404')}` });
    assert.equal(task.status, 'error');
    assert.equal(task.error.code, 'model_not_found', JSON.stringify(task.error));
    assert.equal(task.error.retryable, false);
    assert.equal(result.isError, true);
  }));

test('the server still works after the failures and exits with code 0 on EOF', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server], async () => {
    const token = uniqueToken('work-after');
    const [, task] = await work({ task: `Echo ${token}` });
    assert.equal(task.status, 'ok', JSON.stringify(task.error));
    assert.ok(task.text.includes(token));
    assert.deepEqual(server.errors.map(String), [], 'the client saw transport or protocol errors');
    const exit = await server.close();
    assert.deepEqual(exit, { code: 0, signal: null });
  }));
