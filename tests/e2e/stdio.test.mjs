// The MCP lifecycle over stdio: tools/list through the SDK, protocol revision negotiation line by
// line, and exit code 0 on EOF.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { TEST_TIMEOUT_MS, startFake, startRawServer, startServer, withLogs } from './helpers.mjs';

const SUPPORTED = ['2025-11-25', '2025-06-18', '2025-03-26'];

let fake;
const servers = [];

before(async () => {
  fake = await startFake({ slots: 2 });
}, { timeout: TEST_TIMEOUT_MS });

after(async () => {
  for (const s of servers) await s.kill();
  await fake?.stop();
}, { timeout: TEST_TIMEOUT_MS });

const TASK_TOOLS = ['batch_offload', 'compress_context', 'offload_work'];
const MODEL_TOOLS = ['list_loaded_models', 'preload_model', 'pull_model'];
const READ_TOOLS = ['cost_dashboard', 'get_metrics'];
const ALL_TOOLS = [...TASK_TOOLS, ...MODEL_TOOLS, ...READ_TOOLS].sort();

test('tools/list offers the task and model tools with input and output schemas', { timeout: TEST_TIMEOUT_MS }, async () => {
  const server = await startServer({ fake });
  servers.push(server);
  await withLogs([server], async () => {
    const names = server.tools.map((t) => t.name).sort();
    assert.deepEqual(names, ALL_TOOLS);
    for (const tool of server.tools) {
      assert.equal(tool.inputSchema?.type, 'object', `${tool.name} inputSchema`);
      assert.equal(typeof tool.description, 'string');
      // The read tools declare no outputSchema (a policy denial answers them batch-shaped).
      if (READ_TOOLS.includes(tool.name)) continue;
      assert.equal(tool.outputSchema?.type, 'object', `${tool.name} outputSchema`);
      if (MODEL_TOOLS.includes(tool.name)) continue;
      assert.ok(tool.outputSchema.properties?.tasks, `${tool.name} outputSchema has no tasks`);
      assert.ok(tool.outputSchema.properties?.totals, `${tool.name} outputSchema has no totals`);
    }
    const batch = server.tools.find((t) => t.name === 'batch_offload');
    assert.ok(batch.inputSchema.properties?.tasks, 'batch_offload takes tasks');
    assert.ok(batch.inputSchema.properties?.sequential, 'batch_offload takes sequential');
    const work = server.tools.find((t) => t.name === 'offload_work');
    assert.ok(work.inputSchema.properties?.task, 'offload_work takes task');
    assert.deepEqual(server.errors.map(String), []);
    const exit = await server.close();
    assert.deepEqual(exit, { code: 0, signal: null });
  });
});

for (const version of SUPPORTED) {
  test(`initialize with protocol ${version}, list tools, exit 0 on EOF`, { timeout: TEST_TIMEOUT_MS }, async () => {
    const server = await startRawServer({ fake });
    servers.push(server);
    await withLogs([server], async () => {
      const init = await server.request('initialize', {
        protocolVersion: version,
        capabilities: {},
        clientInfo: { name: 'offload-e2e-raw', version: '0.0.0' },
      });
      assert.equal(init.error, undefined, JSON.stringify(init.error));
      assert.equal(init.result.protocolVersion, version);
      assert.ok(init.result.capabilities?.tools, 'the server does not declare the tools capability');
      server.notify('notifications/initialized', {});
      const list = await server.request('tools/list', {});
      assert.equal(list.error, undefined, JSON.stringify(list.error));
      assert.deepEqual(list.result.tools.map((t) => t.name).sort(), ALL_TOOLS);
      const unknown = await server.request('tools/call', { name: 'no_such_tool', arguments: {} });
      assert.equal(unknown.error?.code, -32602, JSON.stringify(unknown));
      const exit = await server.close();
      assert.deepEqual(server.badLines, [], 'stdout had lines that are not JSON-RPC messages');
      assert.deepEqual(exit, { code: 0, signal: null });
    });
  });
}

test('an unsupported protocol revision is answered with a supported one', { timeout: TEST_TIMEOUT_MS }, async () => {
  const server = await startRawServer({ fake });
  servers.push(server);
  await withLogs([server], async () => {
    const init = await server.request('initialize', {
      protocolVersion: '1999-01-01',
      capabilities: {},
      clientInfo: { name: 'offload-e2e-raw', version: '0.0.0' },
    });
    assert.equal(init.error, undefined, JSON.stringify(init.error));
    assert.ok(SUPPORTED.includes(init.result.protocolVersion), `got ${init.result.protocolVersion}`);
    const exit = await server.close();
    assert.deepEqual(server.badLines, [], 'stdout had lines that are not JSON-RPC messages');
    assert.deepEqual(exit, { code: 0, signal: null });
  });
});
