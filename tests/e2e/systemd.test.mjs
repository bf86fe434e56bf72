// The daemon as systemd runs it, driven over MCP with the SDK's StreamableHTTPClientTransport:
// socket activation (a listening socket passed as fd 3 with LISTEN_FDS/LISTEN_PID, served instead
// of binding --http, and implying HTTP without it), and SIGHUP reloading the configuration file:
// a valid edit changes what new calls may do (batch.max_tasks, default_model), keys that need a
// restart are named in a warning, and an invalid edit is logged with its file and line while the
// previous configuration stays. (The sd_notify side of both is tests/runtime/systemd_notify_test.)

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

import {
  CALL_TIMEOUT_MS,
  DEFAULT_MODEL,
  OTHER_MODEL,
  TEST_TIMEOUT_MS,
  startFake,
  startHttpServer,
  textOf,
  uniqueToken,
  withLogs,
} from './helpers.mjs';

const dir = mkdtempSync(path.join(tmpdir(), 'offload-systemd-'));

let fake;
const servers = [];

before(async () => {
  fake = await startFake({ slots: 8 });
}, { timeout: TEST_TIMEOUT_MS });

after(async () => {
  for (const server of servers) await server.kill();
  await fake?.stop();
  rmSync(dir, { recursive: true, force: true });
}, { timeout: TEST_TIMEOUT_MS });

async function connect(url) {
  const transport = new StreamableHTTPClientTransport(new URL(url));
  const client = new Client({ name: 'offload-e2e-systemd', version: '0.0.0' });
  await client.connect(transport, { timeout: 15_000 });
  const { tools } = await client.listTools(undefined, { timeout: 15_000 });
  return {
    client,
    tools,
    call: (name, args) => client.callTool({ name, arguments: args }, undefined, { timeout: CALL_TIMEOUT_MS }),
    async close() {
      await transport.terminateSession().catch(() => {});
      await client.close();
    },
  };
}

// A listening TCP socket on 127.0.0.1 with an ephemeral port, as systemd creates it for
// offload.socket. Its fd goes to the daemon; this process closes its own copy right after.
async function listeningSocket() {
  const server = net.createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, backlog: 64 }, resolve);
  });
  return { server, fd: server._handle.fd, port: server.address().port };
}

async function waitForLog(server, pattern, what) {
  const end = Date.now() + 15_000;
  while (Date.now() < end) {
    if (pattern.test(server.stderr())) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`the log never showed ${what} (${pattern})`);
}

function echoTasks(n) {
  return Array.from({ length: n }, (_, i) => ({ task: `Repeat this token exactly: ${uniqueToken(`hup-${i}`)}` }));
}

async function startActivated(options) {
  const socket = await listeningSocket();
  try {
    const server = await startHttpServer({ fake, listenFd: socket.fd, ...options });
    servers.push(server);
    return { server, port: socket.port };
  } finally {
    socket.server.close(); // the daemon has its own copy of the socket now
  }
}

test('socket activation: the passed socket is served instead of binding --http', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { server, port } = await startActivated({});
  await withLogs([server, fake], async () => {
    assert.equal(server.url, `http://127.0.0.1:${port}/mcp`);
    assert.match(server.stderr(), /socket activation: serving the socket systemd passed \(127\.0\.0\.1:\d+\); http\.listen 127\.0\.0\.1:0 is not bound/);
    const session = await connect(server.url);
    try {
      assert.ok(session.tools.some((t) => t.name === 'batch_offload'));
      const token = uniqueToken('activated');
      const result = await session.call('offload_work', { task: `Repeat this token exactly: ${token}` });
      assert.notEqual(result.isError, true, textOf(result));
      assert.ok(result.structuredContent.tasks[0].text.includes(token));
    } finally {
      await session.close();
    }
    const stopped = await server.stop();
    assert.equal(stopped.code, 0, 'exit code after SIGTERM');
  });
});

test('socket activation without --http serves HTTP only', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { server, port } = await startActivated({ http: null });
  await withLogs([server, fake], async () => {
    assert.equal(server.url, `http://127.0.0.1:${port}/mcp`);
    assert.match(server.stderr(), /socket activation: serving the socket systemd passed \(127\.0\.0\.1:\d+\)\n/);
    await waitForLog(server, /serving MCP on HTTP \(/, 'HTTP as the only transport');
    const session = await connect(server.url);
    try {
      assert.ok(session.tools.length > 0);
    } finally {
      await session.close();
    }
    assert.equal((await server.stop()).code, 0);
  });
});

test('SIGHUP reloads the configuration for new calls; an invalid file keeps the old one', { timeout: TEST_TIMEOUT_MS }, async () => {
  const configFile = path.join(dir, 'offload.yaml');
  writeFileSync(configFile, `default_model: ${DEFAULT_MODEL}\nbatch:\n  max_tasks: 3\n`);
  const server = await startHttpServer({ fake, args: ['--config', configFile] });
  servers.push(server);
  await withLogs([server, fake], async () => {
    const session = await connect(server.url);
    try {
      const before = await session.call('batch_offload', { tasks: echoTasks(3) });
      assert.notEqual(before.isError, true, textOf(before));
      assert.equal(before.structuredContent.tasks[0].model, DEFAULT_MODEL);

      // A valid edit: a lower batch limit and another default model apply to the next calls, of
      // this session and of new ones; a key that needs a restart is named and left alone.
      writeFileSync(
        configFile,
        `default_model: ${OTHER_MODEL}\nbatch:\n  max_tasks: 2\nhttp:\n  max_sessions: 7\n`,
      );
      process.kill(server.pid, 'SIGHUP');
      await waitForLog(server, /configuration reloaded: default_model, batch\.max_tasks changed/, 'the reload');
      assert.match(server.stderr(), /configuration reload: http\.max_sessions changed, which only a restart applies/);
      const refused = await session.call('batch_offload', { tasks: echoTasks(3) });
      assert.equal(refused.isError, true);
      assert.match(textOf(refused), /the limit is 2 per batch/);
      const fresh = await connect(server.url);
      try {
        const alsoRefused = await fresh.call('batch_offload', { tasks: echoTasks(3) });
        assert.match(textOf(alsoRefused), /the limit is 2 per batch/);
        const two = await fresh.call('batch_offload', { tasks: echoTasks(2) });
        assert.notEqual(two.isError, true, textOf(two));
        assert.equal(two.structuredContent.tasks[0].model, OTHER_MODEL);
      } finally {
        await fresh.close();
      }

      // An invalid edit: rejected with its file and line; the reloaded configuration stays.
      writeFileSync(configFile, `default_model: ${DEFAULT_MODEL}\nbatch:\n  max_tasks: zero\n`);
      process.kill(server.pid, 'SIGHUP');
      const escaped = configFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      await waitForLog(
        server,
        new RegExp(`configuration reload rejected, the running configuration stays: ${escaped}:3: batch\\.max_tasks`),
        'the rejected reload',
      );
      const still = await session.call('batch_offload', { tasks: echoTasks(3) });
      assert.match(textOf(still), /the limit is 2 per batch/);
      const ok = await session.call('batch_offload', { tasks: echoTasks(2) });
      assert.notEqual(ok.isError, true, textOf(ok));
      assert.equal(ok.structuredContent.tasks[0].model, OTHER_MODEL);
    } finally {
      await session.close();
    }
    assert.equal((await server.stop()).code, 0);
  });
});
