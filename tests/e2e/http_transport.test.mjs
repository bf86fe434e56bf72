// The Streamable HTTP transport end to end: the official SDK client
// (StreamableHTTPClientTransport) against `offload serve --http 127.0.0.1:0` and the fake LLM:
// initialize, tools/list and batch_offload; session ids (400/404/DELETE); MCP-Protocol-Version;
// Host/Origin (403); stdio and HTTP in one daemon; and bad requests (415/406/413/400/405) sent while another session's batch
// runs, which must still complete correctly.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

import {
  CALL_TIMEOUT_MS,
  TEST_TIMEOUT_MS,
  checkTaskFields,
  checkTotals,
  rawHttp,
  startFake,
  startHttpServer,
  startServer,
  uniqueToken,
  withLogs,
} from './helpers.mjs';

const MCP_HEADERS = { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' };
const MAX_BODY_BYTES = 65536;

const dir = mkdtempSync(path.join(tmpdir(), 'offload-http-'));
const configFile = path.join(dir, 'offload.yaml');
writeFileSync(configFile, `http:\n  max_body_bytes: ${MAX_BODY_BYTES}\n`);

let fake;
let server;

before(async () => {
  fake = await startFake({ slots: 8 });
  server = await startHttpServer({ fake, args: ['--config', configFile, '--max-concurrency', '8'] });
}, { timeout: TEST_TIMEOUT_MS });

after(async () => {
  await server?.kill();
  await fake?.stop();
}, { timeout: TEST_TIMEOUT_MS });

async function connect(url) {
  const transport = new StreamableHTTPClientTransport(new URL(url));
  const client = new Client({ name: 'offload-e2e-http', version: '0.0.0' });
  await client.connect(transport, { timeout: 15_000 });
  // Listing the tools makes the SDK check structuredContent against each outputSchema later.
  const { tools } = await client.listTools(undefined, { timeout: 15_000 });
  return { client, transport, tools };
}

function rpc(id, method, params = {}) {
  return { jsonrpc: '2.0', id, method, params };
}

function errorOf(response) {
  const body = JSON.parse(response.body);
  assert.equal(body.jsonrpc, '2.0', `not a JSON-RPC body: ${response.body}`);
  return body.error;
}

function echoTasks(n, extra = '') {
  const tokens = Array.from({ length: n }, (_, i) => uniqueToken(`http-task-${i}`));
  return { tokens, tasks: tokens.map((t) => ({ task: `Repeat this token exactly: ${t}${extra}` })) };
}

function checkEchoes(result, tokens) {
  assert.notEqual(result.isError, true);
  const sc = result.structuredContent;
  assert.equal(sc.tasks.length, tokens.length);
  sc.tasks.forEach((t, i) => {
    checkTaskFields(t, i);
    assert.equal(t.status, 'ok', `task ${i}: ${JSON.stringify(t.error)}`);
    assert.ok(t.text.includes(tokens[i]), `task ${i} lacks its token`);
    tokens.forEach((other, j) => {
      if (j !== i) assert.ok(!t.text.includes(other), `task ${i} contains task ${j}'s token`);
    });
  });
  checkTotals(sc);
}

test('initialize, tools/list and batch_offload over HTTP with the SDK client', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server], async () => {
    const { client, transport, tools } = await connect(server.url);
    try {
      assert.match(transport.sessionId, /^[0-9a-f]{32}$/, 'the session id is 128 bits in hex');
      assert.equal(transport.protocolVersion, '2025-11-25');
      assert.deepEqual(tools.map((t) => t.name).sort(), ['batch_offload', 'compress_context', 'cost_dashboard', 'get_metrics', 'list_loaded_models', 'offload_work', 'preload_model', 'pull_model']);
      const { tokens, tasks } = echoTasks(3);
      const result = await client.callTool({ name: 'batch_offload', arguments: { tasks } }, undefined, {
        timeout: CALL_TIMEOUT_MS,
      });
      checkEchoes(result, tokens);
      await client.ping({ timeout: CALL_TIMEOUT_MS });
    } finally {
      await transport.terminateSession().catch(() => {});
      await client.close();
    }
  }));

test('session ids: missing gives 400, unknown gives 404, DELETE ends the session', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server], async () => {
    const missing = await rawHttp(server.url, { method: 'POST', headers: MCP_HEADERS, body: rpc(1, 'tools/list') });
    assert.equal(missing.status, 400);
    assert.match(errorOf(missing).message, /Mcp-Session-Id/);
    const unknown = await rawHttp(server.url, {
      method: 'POST',
      headers: { ...MCP_HEADERS, 'Mcp-Session-Id': 'f'.repeat(32) },
      body: rpc(1, 'tools/list'),
    });
    assert.equal(unknown.status, 404);
    assert.equal(errorOf(unknown).code, -32001);

    const { client, transport } = await connect(server.url);
    const id = transport.sessionId;
    const live = await rawHttp(server.url, {
      method: 'POST',
      headers: { ...MCP_HEADERS, 'Mcp-Session-Id': id, 'MCP-Protocol-Version': '2025-11-25' },
      body: rpc(7, 'ping'),
    });
    assert.equal(live.status, 200);
    assert.deepEqual(JSON.parse(live.body), { jsonrpc: '2.0', id: 7, result: {} });
    await transport.terminateSession(); // DELETE; throws unless 2xx
    await client.close();
    const after = await rawHttp(server.url, {
      method: 'POST',
      headers: { ...MCP_HEADERS, 'Mcp-Session-Id': id },
      body: rpc(8, 'ping'),
    });
    assert.equal(after.status, 404);
  }));

test('MCP-Protocol-Version: every supported revision is accepted, others get 400', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server], async () => {
    const { client, transport } = await connect(server.url);
    try {
      const post = (version, id) =>
        rawHttp(server.url, {
          method: 'POST',
          headers: { ...MCP_HEADERS, 'Mcp-Session-Id': transport.sessionId, 'MCP-Protocol-Version': version },
          body: rpc(id, 'ping'),
        });
      for (const [i, version] of ['2025-11-25', '2025-06-18', '2025-03-26'].entries())
        assert.equal((await post(version, 10 + i)).status, 200, version);
      for (const [i, version] of ['2099-01-01', '2000-01-01', 'invalid-protocol-version'].entries()) {
        const res = await post(version, 20 + i);
        assert.equal(res.status, 400, version);
        assert.match(errorOf(res).message, /MCP-Protocol-Version/);
      }
      // Before initialize too (no session), the header is checked.
      const early = await rawHttp(server.url, {
        method: 'POST',
        headers: { ...MCP_HEADERS, 'MCP-Protocol-Version': '2099-01-01' },
        body: rpc(1, 'tools/list'),
      });
      assert.equal(early.status, 400);
    } finally {
      await transport.terminateSession().catch(() => {});
      await client.close();
    }
  }));

test('Host and Origin naming another machine get 403 (DNS rebinding)', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server], async () => {
    const init = rpc(1, 'initialize', {
      protocolVersion: '2025-11-25',
      capabilities: {},
      clientInfo: { name: 'rebinding', version: '1' },
    });
    const port = new URL(server.url).port;
    const evilHost = await rawHttp(server.url, {
      method: 'POST',
      headers: { ...MCP_HEADERS, Host: 'evil.example.com' },
      body: init,
    });
    assert.equal(evilHost.status, 403);
    assert.ok(errorOf(evilHost).message.length > 0);
    const evilOrigin = await rawHttp(server.url, {
      method: 'POST',
      headers: { ...MCP_HEADERS, Origin: 'https://evil.example.com' },
      body: init,
    });
    assert.equal(evilOrigin.status, 403);
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`]) {
      const ok = await rawHttp(server.url, { method: 'POST', headers: { ...MCP_HEADERS, Host: host }, body: init });
      assert.equal(ok.status, 200, host);
      await rawHttp(server.url, { method: 'DELETE', headers: { 'Mcp-Session-Id': ok.headers['mcp-session-id'] } });
    }
    const localOrigin = await rawHttp(server.url, {
      method: 'POST',
      headers: { ...MCP_HEADERS, Origin: 'http://localhost:5173' },
      body: init,
    });
    assert.equal(localOrigin.status, 200);
    await rawHttp(server.url, { method: 'DELETE', headers: { 'Mcp-Session-Id': localOrigin.headers['mcp-session-id'] } });
    // /healthz is protected the same way.
    const health = await rawHttp(`${server.base}/healthz`, { headers: { Host: 'evil.example.com' } });
    assert.equal(health.status, 403);
  }));

test("bad requests get precise statuses while another session's batch runs unharmed", { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server, fake], async () => {
    const { client, transport } = await connect(server.url);
    const other = await connect(server.url);
    try {
      const { tokens, tasks } = echoTasks(4, ' [[latency=1500]]');
      const running = client.callTool({ name: 'batch_offload', arguments: { tasks } }, undefined, {
        timeout: CALL_TIMEOUT_MS,
      });
      const session = other.transport.sessionId;
      const post = (headers, body) =>
        rawHttp(server.url, { method: 'POST', headers: { ...MCP_HEADERS, 'Mcp-Session-Id': session, ...headers }, body });

      const wrongType = await post({ 'Content-Type': 'text/plain' }, rpc(1, 'ping'));
      assert.equal(wrongType.status, 415);
      assert.match(errorOf(wrongType).message, /Content-Type/);
      const jsonOnly = await post({ Accept: 'application/json' }, rpc(2, 'ping'));
      assert.equal(jsonOnly.status, 406);
      assert.match(errorOf(jsonOnly).message, /text\/event-stream/);
      const oversized = await post({}, { ...rpc(3, 'ping'), pad: 'x'.repeat(MAX_BODY_BYTES) });
      assert.equal(oversized.status, 413);
      assert.match(errorOf(oversized).message, /max_body_bytes/);
      const garbage = await post({}, '{"jsonrpc": "2.0", "id": 4, "method": ');
      assert.equal(garbage.status, 400);
      assert.equal(errorOf(garbage).code, -32700);
      const notRpc = await post({}, '"hello"');
      assert.equal(notRpc.status, 400);
      assert.equal(errorOf(notRpc).code, -32600);
      // JSON-RPC batches belong to protocol 2025-03-26 only.
      const batch = await post({}, [rpc(5, 'ping'), rpc(6, 'ping')]);
      assert.equal(batch.status, 400);
      assert.equal(errorOf(batch).code, -32600);
      const put = await rawHttp(server.url, { method: 'PUT', headers: { ...MCP_HEADERS, 'Mcp-Session-Id': session }, body: '{}' });
      assert.equal(put.status, 405);
      assert.equal(put.headers.allow, 'GET, POST, DELETE');
      const nowhere = await rawHttp(`${server.base}/nowhere`);
      assert.equal(nowhere.status, 404);
      const notification = await post({}, { jsonrpc: '2.0', method: 'notifications/initialized' });
      assert.equal(notification.status, 202);
      assert.equal(notification.body, '');

      // Both sessions still work, and the batch that ran meanwhile is complete and correct.
      await other.client.ping({ timeout: CALL_TIMEOUT_MS });
      checkEchoes(await running, tokens);
    } finally {
      for (const c of [{ client, transport }, other]) {
        await c.transport.terminateSession().catch(() => {});
        await c.client.close();
      }
    }
  }));

test('SIGTERM ends the server cleanly with exit code 0 and nothing on stdout', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server], async () => {
    const { client } = await connect(server.url);
    const { code, signal } = await server.stop();
    await client.close();
    assert.equal(signal, null);
    assert.equal(code, 0);
    assert.equal(server.stdout(), '');
  }));

test('--stdio and --http together: both serve, and EOF on stdin ends the daemon', { timeout: TEST_TIMEOUT_MS }, async () => {
  const both = await startServer({ fake, args: ['--http', '127.0.0.1:0'] });
  try {
    await withLogs([both], async () => {
      const url = /listening on (http:\/\/127\.0\.0\.1:\d+\/mcp)/.exec(both.logs())?.[1];
      assert.ok(url, 'no "listening on" line on stderr');
      const { client } = await connect(url);
      const { tokens, tasks } = echoTasks(2);
      checkEchoes(await client.callTool({ name: 'batch_offload', arguments: { tasks } }, undefined, { timeout: CALL_TIMEOUT_MS }), tokens);
      const stdioTokens = echoTasks(1);
      checkEchoes(await both.callTool('batch_offload', { tasks: stdioTokens.tasks }), stdioTokens.tokens);
      const metrics = (await rawHttp(url.replace(/\/mcp$/, '/metrics'))).body;
      assert.match(metrics, /^offload_sessions\{transport="stdio"\} 1$/m);
      assert.match(metrics, /^offload_sessions\{transport="http"\} 1$/m);
      const { code } = await both.close();
      assert.equal(code, 0);
      await client.close();
      await assert.rejects(rawHttp(`${url.replace(/\/mcp$/, '')}/healthz`), 'the HTTP listener is gone too');
    });
  } finally {
    await both.kill();
  }
});
