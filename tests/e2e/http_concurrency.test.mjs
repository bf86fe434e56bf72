// 50 SDK clients, each in its own Streamable HTTP session, run a batch at the same time against
// one `offload serve --http`: every task of every batch must come back with its own answer, and
// the session gauge must follow the sessions.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

import { CALL_TIMEOUT_MS, TEST_TIMEOUT_MS, rawHttp, startFake, startHttpServer, uniqueToken, withLogs } from './helpers.mjs';

const SESSIONS = 50;
const TASKS_PER_BATCH = 3;

let fake;
let server;

before(async () => {
  fake = await startFake({ slots: 32 });
  server = await startHttpServer({ fake, args: ['--max-concurrency', '32'] });
}, { timeout: TEST_TIMEOUT_MS });

after(async () => {
  await server?.kill();
  await fake?.stop();
}, { timeout: TEST_TIMEOUT_MS });

async function sessionGauge() {
  const text = (await rawHttp(`${server.base}/metrics`)).body;
  return Number(/^offload_sessions\{transport="http"\} (\d+)$/m.exec(text)[1]);
}

test(`${SESSIONS} concurrent SDK sessions each run a batch, all correct`, { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([server, fake], async () => {
    const clients = await Promise.all(
      Array.from({ length: SESSIONS }, async (_, s) => {
        const transport = new StreamableHTTPClientTransport(new URL(server.url));
        const client = new Client({ name: `offload-e2e-${s}`, version: '0.0.0' });
        await client.connect(transport, { timeout: 20_000 });
        await client.listTools(undefined, { timeout: CALL_TIMEOUT_MS });
        return { client, transport };
      }),
    );
    try {
      assert.equal(new Set(clients.map((c) => c.transport.sessionId)).size, SESSIONS, 'session ids are unique');
      assert.equal(await sessionGauge(), SESSIONS);
      const runs = clients.map(async ({ client }, s) => {
        const tokens = Array.from({ length: TASKS_PER_BATCH }, (_, i) => uniqueToken(`s${s}-t${i}`));
        const tasks = tokens.map((t, i) => ({ task: `Repeat this token exactly: ${t}${i === 0 ? ' [[latency=200]]' : ''}` }));
        const result = await client.callTool({ name: 'batch_offload', arguments: { tasks } }, undefined, {
          timeout: CALL_TIMEOUT_MS,
        });
        return { s, tokens, result };
      });
      const everyToken = [];
      for (const { s, tokens, result } of await Promise.all(runs)) {
        assert.notEqual(result.isError, true, `session ${s}`);
        const { tasks, totals } = result.structuredContent;
        assert.equal(totals.ok, TASKS_PER_BATCH, `session ${s}: ${JSON.stringify(tasks.map((t) => t.error))}`);
        tasks.forEach((t, i) => assert.ok(t.text.includes(tokens[i]), `session ${s} task ${i} lacks its token`));
        everyToken.push(...tokens.map((token, i) => ({ token, text: tasks[i].text, s })));
      }
      // No answer went to another session.
      for (const { token, s } of everyToken)
        for (const other of everyToken)
          if (other.s !== s) assert.ok(!other.text.includes(token), `session ${other.s} got session ${s}'s answer`);
    } finally {
      await Promise.all(
        clients.map(async ({ client, transport }) => {
          await transport.terminateSession().catch(() => {});
          await client.close();
        }),
      );
    }
    assert.equal(await sessionGauge(), 0, 'DELETE ended every session');
  }));
