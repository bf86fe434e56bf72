// Bearer tokens (from the environment and from a file) on the Streamable HTTP transport: 401
// without a valid token, the token's agent as the identity policy scopes see, sessions bound to
// their agent; and /healthz and /metrics.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

import { CALL_TIMEOUT_MS, TEST_TIMEOUT_MS, rawHttp, startFake, startHttpServer, textOf, withLogs } from './helpers.mjs';

const MCP_HEADERS = { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' };
const ALICE = 'alice-0123456789abcdef0123456789abcdef';
const BOB = 'bob-fedcba9876543210fedcba9876543210';

const dir = mkdtempSync(path.join(tmpdir(), 'offload-http-auth-'));
const tokenFile = path.join(dir, 'bob.token');
writeFileSync(tokenFile, `${BOB}\n`);
const policy = path.join(dir, 'policy.yaml');
// One batch per agent and (rolling) hour: a second call of the same agent is denied, another
// agent's is not.
writeFileSync(policy, `tools:
  batch_offload:
    rules:
      - action: allow
        scope: agent
        rate_limit: {max: 1, window: 3600}
`);
const config = path.join(dir, 'offload.yaml');
writeFileSync(config, `http:
  tokens:
    - token_env: OFFLOAD_E2E_ALICE_TOKEN
      agent: alice
    - token_file: ${tokenFile}
      agent: bob
`);

let fake;
let server;

before(async () => {
  fake = await startFake({ slots: 8 });
  server = await startHttpServer({
    fake,
    args: ['--config', config, '--policy', policy, '--state-dir', path.join(dir, 'state')],
    env: { OFFLOAD_E2E_ALICE_TOKEN: ALICE },
  });
}, { timeout: TEST_TIMEOUT_MS });

after(async () => {
  await server?.kill();
  await fake?.stop();
}, { timeout: TEST_TIMEOUT_MS });

async function connect(token) {
  const transport = new StreamableHTTPClientTransport(new URL(server.url), {
    requestInit: token ? { headers: { Authorization: `Bearer ${token}` } } : undefined,
  });
  const client = new Client({ name: 'offload-e2e-auth', version: '0.0.0' });
  await client.connect(transport, { timeout: 15_000 });
  await client.listTools(undefined, { timeout: CALL_TIMEOUT_MS });
  return {
    client,
    transport,
    batch: () =>
      client.callTool({ name: 'batch_offload', arguments: { tasks: [{ task: 'say ok' }] } }, undefined, {
        timeout: CALL_TIMEOUT_MS,
      }),
    async close() {
      await transport.terminateSession().catch(() => {});
      await client.close();
    },
  };
}

test('without a valid bearer token requests get 401 and WWW-Authenticate', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server], async () => {
    await assert.rejects(connect(undefined), (err) => err.code === 401);
    await assert.rejects(connect('not-a-token'), (err) => err.code === 401);
    const none = await rawHttp(server.url, { method: 'POST', headers: MCP_HEADERS, body: { jsonrpc: '2.0', id: 1, method: 'ping' } });
    assert.equal(none.status, 401);
    assert.match(none.headers['www-authenticate'], /^Bearer\b/);
    assert.equal(JSON.parse(none.body).error.code, -32000);
    const wrong = await rawHttp(server.url, {
      method: 'POST',
      headers: { ...MCP_HEADERS, Authorization: `Bearer ${ALICE}x` },
      body: { jsonrpc: '2.0', id: 1, method: 'ping' },
    });
    assert.equal(wrong.status, 401);
    assert.match(wrong.headers['www-authenticate'], /error="invalid_token"/);
    // Tokens never reach the log, not even refused ones.
    assert.ok(!server.logs().includes(ALICE), 'a token appeared in the log');
  }));

test("a token's agent is the identity policies count by, and sessions stay with their agent", { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server], async () => {
    const alice = await connect(ALICE);
    const bob = await connect(BOB);
    try {
      assert.equal((await alice.batch()).isError, false);
      const denied = await alice.batch();
      assert.equal(denied.isError, true);
      assert.match(textOf(denied), /POLICY DENIED/);
      // Bob (token from a file) has his own counter.
      assert.equal((await bob.batch()).isError, false);
      // Alice's session cannot be used with Bob's token: as if it did not exist.
      const hijack = await rawHttp(server.url, {
        method: 'POST',
        headers: { ...MCP_HEADERS, Authorization: `Bearer ${BOB}`, 'Mcp-Session-Id': alice.transport.sessionId },
        body: { jsonrpc: '2.0', id: 9, method: 'ping' },
      });
      assert.equal(hijack.status, 404);
      assert.ok(!server.logs().includes(ALICE) && !server.logs().includes(BOB), 'a token appeared in the log');
    } finally {
      await alice.close();
      await bob.close();
    }
  }));

test('GET /healthz says ready without a token; GET /metrics needs one and shows the families', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server], async () => {
    const health = await rawHttp(`${server.base}/healthz`);
    assert.equal(health.status, 200);
    assert.equal(health.body, 'ready\n');
    assert.equal((await rawHttp(`${server.base}/metrics`)).status, 401);
    const alice = await connect(ALICE);
    try {
      const res = await rawHttp(`${server.base}/metrics`, { headers: { Authorization: `Bearer ${ALICE}` } });
      assert.equal(res.status, 200);
      assert.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/);
      const text = res.body;
      for (const family of [
        'offload_sessions',
        'offload_inflight_calls',
        'offload_tasks_total',
        'offload_backend_request_seconds',
        'offload_backend_queue_depth',
        'offload_http_requests_total',
      ])
        assert.match(text, new RegExp(`^# TYPE ${family} `, 'm'), family);
      assert.match(text, /^offload_sessions\{transport="http"\} 1$/m);
      assert.match(text, /^offload_sessions\{transport="stdio"\} 0$/m);
      assert.match(text, new RegExp(`^offload_backend_queue_depth\\{backend="ollama@127\\.0\\.0\\.1:${new URL(fake.url).port}"\\} 0$`, 'm'));
      const ok = Number(/^offload_http_requests_total\{code="200"\} (\d+)$/m.exec(text)[1]);
      const unauthorized = Number(/^offload_http_requests_total\{code="401"\} (\d+)$/m.exec(text)[1]);
      assert.ok(ok >= 2, `200s counted: ${ok}`);
      assert.ok(unauthorized >= 1, `401s counted: ${unauthorized}`);
      for (const line of text.split('\n').filter((l) => l && !l.startsWith('#')))
        assert.match(line, /^[a-z_]+(\{[^}]*\})? -?[0-9.e+]+$/, `not Prometheus text: ${line}`);
    } finally {
      await alice.close();
    }
  }));
