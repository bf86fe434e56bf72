// Streams and older clients over Streamable HTTP: the standalone GET stream (priming event, one
// per session, reconnecting with Last-Event-ID), 2025-03-26 clients with JSON-RPC batches, and
// idle sessions expiring. The session sends nothing unprompted yet, so which message goes on
// which stream and the replay after a break are tested with a scripted session in
// tests/runtime/http_transport_test.cpp; here the real binary shows that a client can hold,
// drop and resume its streams.

import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

import { CALL_TIMEOUT_MS, TEST_TIMEOUT_MS, rawHttp, startFake, startHttpServer, uniqueToken, withLogs } from './helpers.mjs';

const MCP_HEADERS = { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' };

let fake;
let server;

before(async () => {
  fake = await startFake({ slots: 8 });
  server = await startHttpServer({ fake });
}, { timeout: TEST_TIMEOUT_MS });

after(async () => {
  await server?.kill();
  await fake?.stop();
}, { timeout: TEST_TIMEOUT_MS });

function rpc(id, method, params = {}) {
  return { jsonrpc: '2.0', id, method, params };
}

async function initialize(url, protocolVersion) {
  const res = await rawHttp(url, {
    method: 'POST',
    headers: MCP_HEADERS,
    body: rpc(1, 'initialize', { protocolVersion, capabilities: {}, clientInfo: { name: 'raw', version: '1' } }),
  });
  assert.equal(res.status, 200, res.body);
  const session = res.headers['mcp-session-id'];
  assert.match(session, /^[\x21-\x7e]+$/);
  const note = await rawHttp(url, {
    method: 'POST',
    headers: { ...MCP_HEADERS, 'Mcp-Session-Id': session, 'MCP-Protocol-Version': protocolVersion },
    body: { jsonrpc: '2.0', method: 'notifications/initialized' },
  });
  assert.equal(note.status, 202);
  return { session, result: JSON.parse(res.body).result };
}

function parseEvent(block) {
  const event = { id: undefined, data: undefined, retry: undefined };
  for (const line of block.split('\n')) {
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') event.data = event.data === undefined ? value : `${event.data}\n${value}`;
    else if (field === 'id' || field === 'retry') event[field] = value;
  }
  return event;
}

// GET /mcp as an event stream, read event by event. Resolves once the headers are in.
function openStream(url, headers) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'GET', agent: false, headers }, (res) => {
      const events = [];
      const waiters = [];
      let buffer = '';
      let ended = false;
      const flush = () => {
        while (waiters.length > 0 && (events.length > 0 || ended)) waiters.shift()(events.shift());
      };
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        buffer += chunk;
        for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
          events.push(parseEvent(buffer.slice(0, end)));
          buffer = buffer.slice(end + 2);
        }
        flush();
      });
      res.on('end', () => {
        ended = true;
        flush();
      });
      res.on('error', () => {
        ended = true;
        flush();
      });
      resolve({
        status: res.statusCode,
        headers: res.headers,
        body: () => buffer,
        // The next event, or undefined once the stream has ended.
        next(ms = 10_000) {
          return new Promise((done, fail) => {
            const timer = setTimeout(() => fail(new Error(`no SSE event within ${ms} ms`)), ms);
            waiters.push((event) => {
              clearTimeout(timer);
              done(event);
            });
            flush();
          });
        },
        close() {
          req.destroy();
        },
      });
    });
    req.on('error', reject);
    req.end();
  });
}

test('the standalone GET stream: a priming event, one stream per session, resumable', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server], async () => {
    const { session } = await initialize(server.url, '2025-11-25');
    const headers = { Accept: 'text/event-stream', 'Mcp-Session-Id': session, 'MCP-Protocol-Version': '2025-11-25' };
    const first = await openStream(server.url, headers);
    assert.equal(first.status, 200);
    assert.match(first.headers['content-type'], /^text\/event-stream/);
    const priming = await first.next();
    assert.match(priming.id, /^0:\d+$/, 'event ids name the stream (0: standalone) and a position');
    assert.equal(priming.data, '', 'the priming event carries no message');
    assert.equal(priming.retry, '1000', 'the default sse_retry_ms');

    const second = await rawHttp(server.url, { headers });
    assert.equal(second.status, 409);
    assert.match(JSON.parse(second.body).error.message, /already open/);

    // The client drops the stream and comes back with the id of the last event it saw.
    first.close();
    const resumed = await openStream(server.url, { ...headers, 'Last-Event-ID': priming.id });
    assert.equal(resumed.status, 200);
    assert.match(resumed.headers['content-type'], /^text\/event-stream/);
    const third = await rawHttp(server.url, { headers });
    assert.equal(third.status, 409, 'the resumed stream is the session stream again');
    resumed.close();

    for (const bad of ['yesterday', '0:999999', '42:0']) {
      const res = await rawHttp(server.url, { headers: { ...headers, 'Last-Event-ID': bad } });
      assert.equal(res.status, 400, `Last-Event-ID ${bad}`);
    }
    assert.equal((await rawHttp(server.url, { headers: { ...headers, Accept: 'application/json' } })).status, 406);
    assert.equal((await rawHttp(server.url, { headers: { Accept: 'text/event-stream' } })).status, 400);
    await rawHttp(server.url, { method: 'DELETE', headers: { 'Mcp-Session-Id': session } });
    assert.equal((await rawHttp(server.url, { headers })).status, 404);
  }));

test("the SDK client's own GET stream is the session's standalone stream", { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server], async () => {
    const transport = new StreamableHTTPClientTransport(new URL(server.url));
    const client = new Client({ name: 'offload-e2e-http', version: '0.0.0' });
    const errors = [];
    client.onerror = (err) => errors.push(err);
    await client.connect(transport, { timeout: 15_000 });
    try {
      await client.listTools(undefined, { timeout: CALL_TIMEOUT_MS });
      // The SDK opens GET /mcp right after initialization, in the background: a second one gets
      // 409 once it is there.
      const headers = { Accept: 'text/event-stream', 'Mcp-Session-Id': transport.sessionId };
      let status = 0;
      for (let attempt = 0; attempt < 50 && status !== 409; attempt++) {
        const res = await rawHttp(server.url, { headers });
        status = res.status;
        if (status !== 409) await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(status, 409);
      await client.ping({ timeout: CALL_TIMEOUT_MS });
      assert.deepEqual(errors, [], 'the SDK reported transport errors');
    } finally {
      await transport.terminateSession().catch(() => {});
      await client.close();
    }
  }));

test('2025-03-26 clients: batches are split and their responses gathered', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server], async () => {
    const { session, result } = await initialize(server.url, '2025-03-26');
    assert.equal(result.protocolVersion, '2025-03-26');
    const headers = { ...MCP_HEADERS, 'Mcp-Session-Id': session, 'MCP-Protocol-Version': '2025-03-26' };
    const token = uniqueToken('batch-rpc');
    const res = await rawHttp(server.url, {
      method: 'POST',
      headers,
      body: [
        { jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 'x', progress: 1 } },
        rpc(2, 'tools/list'),
        rpc(3, 'ping'),
        rpc('four', 'tools/call', { name: 'offload_work', arguments: { task: `Repeat this token exactly: ${token}` } }),
      ],
    });
    assert.equal(res.status, 200, res.body);
    assert.match(res.headers['content-type'], /^application\/json/);
    const responses = JSON.parse(res.body);
    assert.ok(Array.isArray(responses), 'a batch is answered with an array');
    const byId = new Map(responses.map((r) => [r.id, r]));
    assert.deepEqual([...byId.keys()].sort(), [2, 3, 'four'].sort());
    assert.deepEqual(byId.get(2).result.tools.map((t) => t.name).sort(), ['batch_offload', 'compress_context', 'cost_dashboard', 'get_metrics', 'list_loaded_models', 'offload_work', 'preload_model', 'pull_model']);
    assert.deepEqual(byId.get(3).result, {});
    const call = byId.get('four').result;
    assert.equal(call.isError, false);
    assert.ok(call.structuredContent.tasks[0].text.includes(token));

    const notesOnly = await rawHttp(server.url, {
      method: 'POST',
      headers,
      body: [{ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 99 } }],
    });
    assert.equal(notesOnly.status, 202);
    const duplicate = await rawHttp(server.url, { method: 'POST', headers, body: [rpc(5, 'ping'), rpc(5, 'ping')] });
    assert.equal(duplicate.status, 400);
    // Older clients get no priming event (they would try to parse its empty data).
    const stream = await openStream(server.url, { Accept: 'text/event-stream', 'Mcp-Session-Id': session });
    assert.equal(stream.status, 200);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(stream.body(), '', 'nothing is sent on the stream until there is a message');
    stream.close();
    await rawHttp(server.url, { method: 'DELETE', headers: { 'Mcp-Session-Id': session } });
  }));

test('a session with nothing running or open expires after session_idle_timeout', { timeout: TEST_TIMEOUT_MS }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'offload-http-idle-'));
  const config = path.join(dir, 'offload.yaml');
  writeFileSync(config, 'http:\n  session_idle_timeout: 1s\n');
  const short = await startHttpServer({ fake, args: ['--config', config] });
  try {
    await withLogs([short], async () => {
      const { session } = await initialize(short.url, '2025-11-25');
      const gauge = async () => {
        const text = (await rawHttp(`${short.base}/metrics`)).body;
        return Number(/^offload_sessions\{transport="http"\} (\d+)$/m.exec(text)[1]);
      };
      assert.equal(await gauge(), 1);
      // Asking the session would keep it alive: watch the gauge instead, within a generous bound.
      const deadline = Date.now() + 15_000;
      while ((await gauge()) !== 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      assert.equal(await gauge(), 0);
      const gone = await rawHttp(short.url, { method: 'POST', headers: { ...MCP_HEADERS, 'Mcp-Session-Id': session }, body: rpc(2, 'ping') });
      assert.equal(gone.status, 404);
    });
  } finally {
    await short.kill();
  }
});
