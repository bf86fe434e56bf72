// batch_offload end to end: a parallel batch with injected faults, the concurrency limit, and a
// sequential chain, against one `offload serve --stdio --max-concurrency 4` and a fake LLM.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  DEFAULT_MODEL,
  TEST_TIMEOUT_MS,
  checkTaskFields,
  checkTotals,
  lastLine,
  startFake,
  startServer,
  textOf,
  uniqueToken,
  withLogs,
  wordCount,
} from './helpers.mjs';

let fake;
let server;

before(async () => {
  fake = await startFake({ slots: 8 });
  server = await startServer({ fake, args: ['--max-concurrency', '4'] });
}, { timeout: TEST_TIMEOUT_MS });

after(async () => {
  await server?.kill();
  await fake?.stop();
}, { timeout: TEST_TIMEOUT_MS });

test('a parallel batch of 10 returns every task in input order, faults included', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server], async () => {
    const faults = { 2: 'http500', 5: 'malformed', 8: 'drop' };
    const expected = { http500: 'backend_http_error', malformed: 'malformed_stream', drop: 'connection_dropped' };
    const tokens = Array.from({ length: 10 }, (_, i) => uniqueToken(`echo-task-${i}`));
    const tasks = tokens.map((token, i) => {
      const task = { task: `Repeat this token exactly: ${token}${faults[i] ? ` [[fault=${faults[i]}]]` : ''}` };
      // Optional fields must be accepted and must not change which answer a task gets.
      if (i === 1) Object.assign(task, { language: 'python', output_format: 'code' });
      if (i === 3) Object.assign(task, { context: 'def add(a, b):\n    return a + b\n', category: 'code_generation' });
      return task;
    });

    const result = await server.callTool('batch_offload', { tasks });

    assert.notEqual(result.isError, true, 'isError must be false when some tasks succeeded');
    const sc = result.structuredContent;
    assert.ok(sc, 'structuredContent is missing');
    assert.equal(sc.tasks.length, 10);
    sc.tasks.forEach((t, i) => checkTaskFields(t, i));

    for (let i = 0; i < 10; i++) {
      const t = sc.tasks[i];
      if (faults[i]) {
        assert.equal(t.status, 'error', `task ${i} ([[fault=${faults[i]}]]) should fail`);
        assert.equal(t.error.code, expected[faults[i]], `task ${i} error code`);
        if (faults[i] === 'http500') assert.equal(t.error.retryable, true, 'HTTP 500 is retryable');
      } else {
        assert.equal(t.status, 'ok', `task ${i} should succeed: ${JSON.stringify(t.error)}`);
        assert.ok(t.text.includes(tokens[i]), `task ${i}'s text lacks its own token ${tokens[i]}: ${t.text}`);
        tokens.forEach((other, j) => {
          if (j !== i) assert.ok(!t.text.includes(other), `task ${i}'s text contains task ${j}'s token`);
        });
        assert.equal(t.model, DEFAULT_MODEL);
        assert.ok(t.backend.length > 0, `task ${i} names no backend`);
        // The fake counts whitespace-separated words; it echoes the user message.
        assert.equal(t.tokens_out, wordCount(t.text), `task ${i} tokens_out`);
        assert.ok(t.tokens_in >= wordCount(tasks[i].task), `task ${i} tokens_in ${t.tokens_in}`);
      }
    }
    checkTotals(sc);
    assert.equal(sc.totals.tasks, 10);
    assert.equal(sc.totals.ok, 7);
    assert.equal(sc.totals.failed, 3);

    const text = textOf(result);
    assert.ok(
      lastLine(text).startsWith('Summary: 7 of 10 tasks succeeded'),
      `last line of the text is ${JSON.stringify(lastLine(text))}`,
    );
    // One section per task in input order: the successful answers appear in index order.
    let at = -1;
    for (let i = 0; i < 10; i++) {
      if (faults[i]) continue;
      const pos = text.indexOf(tokens[i]);
      assert.ok(pos > at, `task ${i}'s answer is missing or out of order in the text`);
      at = pos;
    }
  }));

test('a parallel batch runs exactly --max-concurrency tasks at once', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server], async () => {
    await fake.resetStats();
    const tokens = Array.from({ length: 8 }, (_, i) => uniqueToken(`par-${i}`));
    const tasks = tokens.map((token) => ({ task: `[[latency=300]] Say ${token}` }));

    const result = await server.callTool('batch_offload', { tasks });

    const sc = result.structuredContent;
    assert.equal(sc.tasks.length, 8);
    sc.tasks.forEach((t, i) => {
      checkTaskFields(t, i);
      assert.equal(t.status, 'ok', `task ${i}: ${JSON.stringify(t.error)}`);
      assert.ok(t.text.includes(tokens[i]), `task ${i}'s text lacks its token`);
    });
    assert.equal(sc.totals.ok, 8);
    const stats = await fake.stats();
    assert.ok(stats.requests >= 8, `the fake saw ${stats.requests} requests: ${JSON.stringify(stats)}`);
    assert.equal(stats.max_concurrent, 4, `8 tasks with --max-concurrency 4 against 8 slots: ${JSON.stringify(stats)}`);
  }));

test('a sequential batch hands each result to the next task', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server], async () => {
    await fake.resetStats();
    const tokens = [uniqueToken('seq-1'), uniqueToken('seq-2'), uniqueToken('seq-3')];
    const tasks = tokens.map((token, i) => ({ task: `Step ${i + 1}: write ${token}` }));

    const result = await server.callTool('batch_offload', { tasks, sequential: true });

    assert.notEqual(result.isError, true);
    const sc = result.structuredContent;
    assert.equal(sc.tasks.length, 3);
    sc.tasks.forEach((t, i) => {
      checkTaskFields(t, i);
      assert.equal(t.status, 'ok', `task ${i}: ${JSON.stringify(t.error)}`);
      assert.ok(t.text.includes(tokens[i]), `task ${i}'s text lacks its own token`);
    });
    assert.equal(sc.tasks[0].text.includes(tokens[1]), false, 'task 1 cannot know task 2');
    assert.ok(sc.tasks[1].text.includes(tokens[0]), "task 2's text lacks task 1's token");
    assert.ok(sc.tasks[1].text.includes(sc.tasks[0].text), "task 2's text lacks task 1's result");
    assert.ok(sc.tasks[2].text.includes(tokens[1]), "task 3's text lacks task 2's token");
    assert.ok(sc.tasks[2].text.includes(sc.tasks[1].text), "task 3's text lacks task 2's result");
    checkTotals(sc);
    assert.equal(sc.totals.ok, 3);
    assert.ok(lastLine(textOf(result)).startsWith('Summary: 3 of 3 tasks succeeded'));
    // Each step needs the previous result, so the steps never overlap.
    const stats = await fake.stats();
    assert.equal(stats.max_concurrent, 1, `sequential tasks overlapped: ${JSON.stringify(stats)}`);
  }));

test('the server exits with code 0 on EOF', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server], async () => {
    assert.deepEqual(server.errors.map(String), [], 'the client saw transport or protocol errors');
    const exit = await server.close();
    assert.deepEqual(exit, { code: 0, signal: null });
  }));
