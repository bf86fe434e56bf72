// Progress and cancellation over Streamable HTTP with the official SDK client: a call with a
// progress token turns its POST into an SSE stream carrying notifications/progress before the
// result; an aborted call stops its requests at the LLM, and the session keeps working.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

import { TEST_TIMEOUT_MS, startFake, startHttpServer, waitFor, withLogs } from './helpers.mjs';

let fake;
let server;
let client;

before(async () => {
  fake = await startFake({ slots: 8 });
  server = await startHttpServer({ fake, args: ['--max-concurrency', '4'] });
  client = new Client({ name: 'offload-e2e-progress', version: '0.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL(server.url)), { timeout: 20_000 });
}, { timeout: TEST_TIMEOUT_MS });

after(async () => {
  await client?.close();
  await server?.kill();
  await fake?.stop();
}, { timeout: TEST_TIMEOUT_MS });

test('progress notifications arrive on the call\'s SSE stream before its result', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server, fake], async () => {
    const seen = [];
    const tasks = Array.from({ length: 4 }, (_, i) => ({ task: `p${i} [[latency=${30 * i}]]` }));
    const result = await client.callTool({ name: 'batch_offload', arguments: { tasks } }, undefined, {
      timeout: 30_000,
      onprogress: (p) => seen.push(p.progress),
    });
    assert.equal(result.structuredContent.totals.ok, 4);
    assert.ok(seen.length >= 3, `only ${seen.length} progress notifications`);
    assert.deepEqual(seen, [1, 2, 3, 4].slice(0, seen.length));
  }));

test('cancelling a call mid-batch over HTTP aborts its requests at the LLM', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server, fake], async () => {
    await fake.resetStats();
    const controller = new AbortController();
    const tasks = Array.from({ length: 6 }, (_, i) => ({ task: `h${i} [[fault=hang]]` }));
    const call = client.callTool({ name: 'batch_offload', arguments: { tasks } }, undefined, {
      timeout: 30_000,
      signal: controller.signal,
    });
    await waitFor('4 requests at the LLM', async () => (await fake.stats()).in_flight === 4);
    controller.abort('test cancels');
    await assert.rejects(call);
    await waitFor('the requests to be aborted', async () => (await fake.stats()).in_flight === 0);
    // Queued tasks are dropped, not started; one whose task had not stopped yet when a slot freed
    // may still slip through, but never all of them.
    const requests = (await fake.stats()).requests;
    assert.ok(requests < tasks.length, `${requests} of ${tasks.length} tasks reached the LLM`);
    const after = await client.callTool({ name: 'offload_work', arguments: { task: 'next' } });
    assert.equal(after.structuredContent.tasks[0].status, 'ok');
  }));
