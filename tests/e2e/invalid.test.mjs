// Bad input: invalid arguments are tool results with isError and a message that names the field
// (and the limit); an unknown tool is JSON-RPC error -32602. The connection survives all of them.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { McpError } from '@modelcontextprotocol/sdk/types.js';

import { TEST_TIMEOUT_MS, startFake, startServer, textOf, uniqueToken, withLogs } from './helpers.mjs';

let fake;
let server;

before(async () => {
  fake = await startFake({ slots: 4 });
  server = await startServer({ fake });
}, { timeout: TEST_TIMEOUT_MS });

after(async () => {
  await server?.kill();
  await fake?.stop();
}, { timeout: TEST_TIMEOUT_MS });

const ok = (i) => ({ task: `Echo task ${i}` });

const cases = [
  { name: 'missing tasks', tool: 'batch_offload', args: {}, field: 'tasks' },
  { name: 'empty tasks', tool: 'batch_offload', args: { tasks: [] }, field: 'tasks' },
  {
    name: '11 tasks',
    tool: 'batch_offload',
    args: { tasks: Array.from({ length: 11 }, (_, i) => ok(i)) },
    field: 'tasks',
    // The message states the limit.
    also: [/\blimit\b/i, /\b10\b/],
  },
  { name: 'tasks not an array', tool: 'batch_offload', args: { tasks: 'write a parser' }, field: 'tasks' },
  { name: 'tasks as an object', tool: 'batch_offload', args: { tasks: { task: 'x' } }, field: 'tasks' },
  {
    name: 'a task without "task"',
    tool: 'batch_offload',
    args: { tasks: [ok(0), ok(1), { language: 'python' }] },
    field: 'tasks[2].task',
  },
  {
    name: 'a task that is not an object',
    tool: 'batch_offload',
    args: { tasks: [ok(0), 'just a string'] },
    field: 'tasks[1]',
  },
  {
    name: 'sequential not a boolean',
    tool: 'batch_offload',
    args: { tasks: [ok(0)], sequential: 'yes' },
    field: 'sequential',
  },
  { name: 'offload_work without task', tool: 'offload_work', args: { language: 'python' }, field: 'task' },
  { name: 'offload_work with a non-string task', tool: 'offload_work', args: { task: 42 }, field: 'task' },
];

for (const c of cases) {
  test(`${c.tool}: ${c.name} is a clear tool error`, { timeout: TEST_TIMEOUT_MS }, () =>
    withLogs([server], async () => {
      const result = await server.callTool(c.tool, c.args);
      assert.equal(result.isError, true, `isError: ${JSON.stringify(result)}`);
      const text = textOf(result);
      const prefix = `Invalid arguments for ${c.tool}: `;
      assert.ok(text.startsWith(prefix), `text should start with ${JSON.stringify(prefix)}: ${JSON.stringify(text)}`);
      assert.ok(text.includes(c.field), `text should name ${c.field}: ${JSON.stringify(text)}`);
      for (const re of c.also ?? []) assert.match(text, re);
      // The connection is still usable.
      await server.ping();
    }));
}

test('an unknown tool is JSON-RPC error -32602', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server], async () => {
    await assert.rejects(server.callTool('no_such_tool', { task: 'x' }), (err) => {
      assert.ok(err instanceof McpError, `expected an McpError, got ${err}`);
      assert.equal(err.code, -32602, err.message);
      return true;
    });
    await server.ping();
  }));

test('a good call still works on the same connection, then EOF exits 0', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server], async () => {
    const token = uniqueToken('after-bad-input');
    const result = await server.callTool('batch_offload', { tasks: [{ task: `Echo ${token}` }] });
    assert.notEqual(result.isError, true);
    const task = result.structuredContent.tasks[0];
    assert.equal(task.status, 'ok', JSON.stringify(task.error));
    assert.ok(task.text.includes(token));
    assert.deepEqual(server.errors.map(String), [], 'the client saw transport or protocol errors');
    const exit = await server.close();
    assert.deepEqual(exit, { code: 0, signal: null });
  }));
