// The fake LLM server itself (`offload fakellm`), spoken to over HTTP with fetch: the
// OpenAI-compatible API and its SSE shape, Ollama's extra endpoints, the markers on both APIs,
// --api, --loading-ms, --queue and /_fake/stats. The other files test the daemon against it.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { DEFAULT_MODEL, OTHER_MODEL, TEST_TIMEOUT_MS, startFake, uniqueToken, withLogs } from './helpers.mjs';

let fake;

before(async () => {
  fake = await startFake({ slots: 4 });
}, { timeout: TEST_TIMEOUT_MS });

after(async () => {
  await fake?.stop();
}, { timeout: TEST_TIMEOUT_MS });

function post(base, path, body, options = {}) {
  return fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
    ...options,
  });
}

function chatBody(prompt, extra = {}) {
  return { model: DEFAULT_MODEL, messages: [{ role: 'user', content: prompt }], ...extra };
}

// The data of every SSE event, in order ("[DONE]" stays text, the rest is parsed).
async function sseEvents(res) {
  const text = await res.text();
  assert.ok(text.endsWith('\n\n'), `the stream does not end with a blank line: ${JSON.stringify(text.slice(-80))}`);
  return text
    .split('\n\n')
    .filter((e) => e !== '')
    .map((e) => {
      assert.ok(e.startsWith('data: '), `not a data event: ${e}`);
      const data = e.slice('data: '.length);
      return data === '[DONE]' ? data : JSON.parse(data);
    });
}

async function ndjsonLines(res) {
  const text = await res.text();
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l));
}

function deltaText(events) {
  return events
    .filter((e) => e !== '[DONE]' && e.choices?.length)
    .map((e) => e.choices[0].delta?.content ?? '')
    .join('');
}

function checkOpenAIError(body, code, type) {
  assert.equal(typeof body.error, 'object', JSON.stringify(body));
  assert.equal(body.error.code, code);
  assert.equal(body.error.type, type);
  assert.equal(typeof body.error.message, 'string');
  assert.ok(body.error.message.length > 0);
}

// Polls the stats until `predicate` holds; the test's timeout turns "never" into a failure.
async function waitForStats(target, predicate) {
  for (;;) {
    const stats = await target.stats();
    if (predicate(stats)) return stats;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

// ---- the OpenAI-compatible API ------------------------------------------------------------------

test('a streamed chat completion is role, deltas, finish, usage, [DONE]', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([fake], async () => {
    const prompt = `Repeat ${uniqueToken('sse')} please`;
    const res = await post(fake.url, '/v1/chat/completions',
      chatBody(prompt, { stream: true, stream_options: { include_usage: true } }));
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/event-stream/);
    const events = await sseEvents(res);
    assert.equal(events.at(-1), '[DONE]');
    const chunks = events.slice(0, -1);
    const usage = chunks.at(-1);
    const finish = chunks.at(-2);
    const first = chunks[0];
    assert.equal(first.object, 'chat.completion.chunk');
    assert.equal(first.choices[0].delta.role, 'assistant');
    for (const chunk of chunks) {
      assert.equal(chunk.id, first.id);
      assert.equal(chunk.model, DEFAULT_MODEL);
    }
    for (const chunk of chunks.slice(0, -1)) {
      assert.equal(chunk.usage, null, 'every chunk before the last says usage: null');
      assert.equal(chunk.choices.length, 1);
    }
    assert.equal(finish.choices[0].finish_reason, 'stop');
    assert.deepEqual(finish.choices[0].delta, {});
    assert.equal(deltaText(chunks), prompt);
    assert.deepEqual(usage.choices, []);
    assert.deepEqual(usage.usage, { prompt_tokens: 3, completion_tokens: 3, total_tokens: 6 });
  }));

test('without include_usage the stream has no usage chunk', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([fake], async () => {
    const res = await post(fake.url, '/v1/chat/completions', chatBody('a b', { stream: true }));
    const events = await sseEvents(res);
    assert.equal(events.at(-1), '[DONE]');
    assert.equal(events.at(-2).choices[0].finish_reason, 'stop');
    assert.ok(events.slice(0, -1).every((e) => e.choices.length === 1 && !('usage' in e)));
  }));

test('an unstreamed chat completion is one JSON body', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([fake], async () => {
    const prompt = `Echo ${uniqueToken('json')}`;
    const res = await post(fake.url, '/v1/chat/completions', { ...chatBody(prompt), model: OTHER_MODEL });
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.equal(body.object, 'chat.completion');
    assert.equal(body.model, OTHER_MODEL);
    assert.equal(body.choices[0].message.role, 'assistant');
    assert.equal(body.choices[0].message.content, prompt);
    assert.equal(body.choices[0].finish_reason, 'stop');
    assert.equal(body.usage.completion_tokens, 2);
    assert.equal(body.usage.total_tokens, body.usage.prompt_tokens + body.usage.completion_tokens);
  }));

test('/v1/models lists the models and errors take the OpenAI shape', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([fake], async () => {
    const models = await (await fetch(`${fake.url}/v1/models`)).json();
    assert.equal(models.object, 'list');
    assert.deepEqual(models.data.map((m) => m.id), [DEFAULT_MODEL, OTHER_MODEL]);
    const missing = await post(fake.url, '/v1/chat/completions', { ...chatBody('x'), model: 'nope:1b' });
    assert.equal(missing.status, 404);
    checkOpenAIError(await missing.json(), 404, 'not_found_error');
    const invalid = await post(fake.url, '/v1/chat/completions', { model: DEFAULT_MODEL });
    assert.equal(invalid.status, 400);
    checkOpenAIError(await invalid.json(), 400, 'invalid_request_error');
    const health = await fetch(`${fake.url}/health`);
    assert.equal(health.status, 200);
    assert.deepEqual(await health.json(), { status: 'ok' });
  }));

// ---- Ollama extras ------------------------------------------------------------------------------

test('preload, /api/ps and unload', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([fake], async () => {
    const loaded = await post(fake.url, '/api/generate', { model: OTHER_MODEL, keep_alive: -1 });
    assert.equal(loaded.status, 200);
    const load = await loaded.json();
    assert.equal(load.done, true);
    assert.equal(load.done_reason, 'load');
    assert.equal(load.model, OTHER_MODEL);
    let ps = await (await fetch(`${fake.url}/api/ps`)).json();
    const entry = ps.models.find((m) => m.name === OTHER_MODEL);
    assert.ok(entry, `ps lacks ${OTHER_MODEL}: ${JSON.stringify(ps)}`);
    assert.ok(entry.size > 0);
    assert.equal(entry.size_vram, entry.size);
    assert.ok(Date.parse(entry.expires_at) > Date.now() + 365 * 24 * 3600 * 1000, 'keep_alive -1 keeps it for good');

    const chatLoad = await post(fake.url, '/api/chat', { model: DEFAULT_MODEL, messages: [] });
    assert.equal((await chatLoad.json()).done_reason, 'load');
    ps = await (await fetch(`${fake.url}/api/ps`)).json();
    const expires = Date.parse(ps.models.find((m) => m.name === DEFAULT_MODEL).expires_at);
    assert.ok(expires > Date.now() && expires < Date.now() + 10 * 60 * 1000, 'the default keep_alive is minutes');

    const unloaded = await post(fake.url, '/api/chat', { model: OTHER_MODEL, keep_alive: 0 });
    assert.equal((await unloaded.json()).done_reason, 'unload');
    ps = await (await fetch(`${fake.url}/api/ps`)).json();
    assert.ok(!ps.models.some((m) => m.name === OTHER_MODEL), JSON.stringify(ps));
  }));

test('/api/generate answers with response lines', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([fake], async () => {
    const prompt = `Say ${uniqueToken('gen')}`;
    const lines = await ndjsonLines(await post(fake.url, '/api/generate', { model: DEFAULT_MODEL, prompt }));
    assert.equal(lines.at(-1).done, true);
    assert.equal(lines.map((l) => l.response).join(''), prompt);
  }));

test('/api/pull streams progress for a served model and an error line otherwise', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([fake], async () => {
    const res = await post(fake.url, '/api/pull', { model: OTHER_MODEL });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /application\/x-ndjson/);
    const lines = await ndjsonLines(res);
    assert.deepEqual(lines.slice(0, 1).map((l) => l.status), ['pulling manifest']);
    assert.deepEqual(lines.slice(-3).map((l) => l.status), ['verifying sha256 digest', 'writing manifest', 'success']);
    const progress = lines.slice(1, -3);
    assert.ok(progress.length >= 2);
    const byDigest = new Map();
    for (const line of progress) {
      assert.match(line.digest, /^sha256:[0-9a-f]{64}$/);
      assert.equal(line.status, `pulling ${line.digest.slice(7, 19)}`);
      const seen = byDigest.get(line.digest) ?? [];
      seen.push(line.completed);
      byDigest.set(line.digest, seen);
      assert.ok(line.completed <= line.total);
    }
    for (const [digest, completed] of byDigest) {
      assert.ok(completed.length > 1, `${digest}: one progress line only`);
      for (let i = 1; i < completed.length; i++) assert.ok(completed[i] > completed[i - 1], `${digest}: ${completed}`);
    }

    const missing = await ndjsonLines(await post(fake.url, '/api/pull', { model: 'nope:1b' }));
    assert.deepEqual(missing, [{ status: 'pulling manifest' }, { error: 'pull model manifest: file does not exist' }]);
    const invalid = await post(fake.url, '/api/pull', { model: 'not a name' });
    assert.equal(invalid.status, 400);
  }));

// ---- markers on both APIs -----------------------------------------------------------------------

test('http503 and http429 answer in each API\'s shape, 429 with Retry-After', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([fake], async () => {
    const busy = await post(fake.url, '/api/chat', chatBody('[[fault=http503]]'));
    assert.equal(busy.status, 503);
    assert.deepEqual(await busy.json(), { error: 'server busy, please try again.  maximum pending requests exceeded' });
    const busyOpenAI = await post(fake.url, '/v1/chat/completions', chatBody('[[fault=http503]]'));
    assert.equal(busyOpenAI.status, 503);
    checkOpenAIError(await busyOpenAI.json(), 503, 'unavailable_error');

    const limited = await post(fake.url, '/v1/chat/completions', chatBody('[[fault=http429]]', { stream: true }));
    assert.equal(limited.status, 429);
    assert.equal(limited.headers.get('retry-after'), '1');
    checkOpenAIError(await limited.json(), 429, 'rate_limit_error');
    const later = await post(fake.url, '/api/chat', chatBody('[[fault=http429:retry_after=2]]'));
    assert.equal(later.status, 429);
    assert.equal(later.headers.get('retry-after'), '2');
    assert.equal(typeof (await later.json()).error, 'string');
  }));

test('context_too_long is llama.cpp\'s exceed_context_size_error or Ollama\'s error', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([fake], async () => {
    const openai = await post(fake.url, '/v1/chat/completions', chatBody('[[fault=context_too_long]]'));
    assert.equal(openai.status, 400);
    const body = await openai.json();
    checkOpenAIError(body, 400, 'exceed_context_size_error');
    assert.ok(body.error.n_prompt_tokens > body.error.n_ctx);
    const ollama = await post(fake.url, '/api/chat', chatBody('[[fault=context_too_long]]'));
    assert.equal(ollama.status, 400);
    assert.equal(typeof (await ollama.json()).error, 'string');
  }));

test('midstream_error sends good chunks, then an error with status 200', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([fake], async () => {
    const prompt = 'one two three four [[fault=midstream_error]]';
    const sse = await post(fake.url, '/v1/chat/completions', chatBody(prompt, { stream: true }));
    assert.equal(sse.status, 200);
    const events = await sseEvents(sse);
    assert.ok(!events.includes('[DONE]'));
    const error = events.at(-1);
    checkOpenAIError(error, 500, 'server_error');
    assert.equal(deltaText(events.slice(0, -1)), 'one two three ');

    const ndjson = await post(fake.url, '/api/chat', chatBody(prompt));
    assert.equal(ndjson.status, 200);
    const lines = await ndjsonLines(ndjson);
    assert.equal(lines.at(-1).error, 'injected fault: midstream_error');
    assert.equal(lines.slice(0, -1).map((l) => l.message.content).join(''), 'one two three ');
    assert.ok(lines.every((l) => l.done !== true));
  }));

test('slow tokens and a slow first token still deliver the whole answer', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([fake], async () => {
    const prompt = `a b ${uniqueToken('slow')} [[fault=slow_first_token=50]] [[fault=slow_tokens=10]]`;
    const events = await sseEvents(await post(fake.url, '/v1/chat/completions', chatBody(prompt, { stream: true })));
    assert.equal(deltaText(events), prompt);
    assert.equal(events.at(-1), '[DONE]');
    const body = await (await post(fake.url, '/api/chat', chatBody(prompt, { stream: false }))).json();
    assert.equal(body.message.content, prompt);
  }));

test('times=K fails the first K attempts of the same prompt, on either API', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([fake], async () => {
    const prompt = `${uniqueToken('retry')} [[fault=http503:times=2]]`;
    assert.equal((await post(fake.url, '/api/chat', chatBody(prompt))).status, 503);
    const second = await post(fake.url, '/v1/chat/completions', chatBody(prompt));
    assert.equal(second.status, 503);
    checkOpenAIError(await second.json(), 503, 'unavailable_error');
    const third = await post(fake.url, '/api/chat', chatBody(prompt, { stream: false }));
    assert.equal(third.status, 200);
    assert.equal((await third.json()).message.content, prompt);
    // A different prompt has attempts of its own.
    assert.equal((await post(fake.url, '/api/chat', chatBody(`${prompt} `))).status, 503);
  }));

test('a client that leaves during a slow first token frees its slot', { timeout: TEST_TIMEOUT_MS }, async () => {
  const slow = await startFake({ slots: 1 });
  try {
    await withLogs([slow], async () => {
      const controller = new AbortController();
      // The header comes at once; the first chunk would take a minute.
      const res = await post(slow.url, '/v1/chat/completions',
        chatBody('[[fault=slow_first_token=60000]] x', { stream: true }), { signal: controller.signal });
      assert.equal(res.status, 200);
      assert.equal((await slow.stats()).in_flight, 1);
      controller.abort();
      await waitForStats(slow, (s) => s.in_flight === 0);
      const next = await post(slow.url, '/api/chat', chatBody('after', { stream: false }));
      assert.equal((await next.json()).message.content, 'after');
      assert.equal((await slow.stats()).faults.slow_first_token, 1);
    });
  } finally {
    await slow.stop();
  }
});

// ---- server options -----------------------------------------------------------------------------

test('--api openai and --api ollama answer 404 for the other API', { timeout: TEST_TIMEOUT_MS }, async () => {
  const openaiOnly = await startFake({ args: ['--api', 'openai'] });
  const ollamaOnly = await startFake({ args: ['--api', 'ollama'] });
  try {
    await withLogs([openaiOnly, ollamaOnly], async () => {
      for (const [method, path] of [['POST', '/api/chat'], ['GET', '/api/tags'], ['GET', '/api/ps'], ['POST', '/api/pull']]) {
        const res = await fetch(`${openaiOnly.url}${path}`, { method, body: method === 'POST' ? '{}' : undefined });
        assert.equal(res.status, 404, `${method} ${path} on an OpenAI-only fake`);
        checkOpenAIError(await res.json(), 404, 'not_found_error');
      }
      const sse = await post(openaiOnly.url, '/v1/chat/completions', chatBody('works', { stream: true }));
      assert.equal(deltaText(await sseEvents(sse)), 'works');

      for (const [method, path] of [['POST', '/v1/chat/completions'], ['GET', '/v1/models'], ['GET', '/health']]) {
        const res = await fetch(`${ollamaOnly.url}${path}`, { method, body: method === 'POST' ? '{}' : undefined });
        assert.equal(res.status, 404, `${method} ${path} on an Ollama-only fake`);
        assert.equal(typeof (await res.json()).error, 'string');
      }
      const lines = await ndjsonLines(await post(ollamaOnly.url, '/api/chat', chatBody('works')));
      assert.equal(lines.at(-1).done, true);
      assert.equal((await openaiOnly.stats()).api, 'openai');
    });
  } finally {
    await openaiOnly.stop();
    await ollamaOnly.stop();
  }
});

// The one assumption about time: the first requests reach the fake within the 4 s of loading
// after it printed its port.
test('--loading-ms answers 503 Loading model, then serves', { timeout: TEST_TIMEOUT_MS }, async () => {
  const loading = await startFake({ args: ['--loading-ms', '4000'] });
  try {
    await withLogs([loading], async () => {
      const health = await fetch(`${loading.url}/health`);
      assert.equal(health.status, 503);
      assert.deepEqual(await health.json(), { error: { code: 503, message: 'Loading model', type: 'unavailable_error' } });
      const completion = await post(loading.url, '/v1/chat/completions', chatBody('x'));
      assert.equal(completion.status, 503);
      assert.deepEqual(await completion.json(), { error: { code: 503, message: 'Loading model', type: 'unavailable_error' } });
      const chat = await post(loading.url, '/api/chat', chatBody('x'));
      assert.equal(chat.status, 503);
      assert.deepEqual(await chat.json(), { error: 'Loading model' });
      // The fake's own endpoints answer throughout.
      assert.equal((await loading.stats()).rejected.loading, 2);

      for (;;) {
        const res = await fetch(`${loading.url}/health`);
        if (res.status === 200) {
          assert.deepEqual(await res.json(), { status: 'ok' });
          break;
        }
        await res.arrayBuffer();
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const ready = await post(loading.url, '/v1/chat/completions', chatBody('ready'));
      assert.equal((await ready.json()).choices[0].message.content, 'ready');
    });
  } finally {
    await loading.stop();
  }
});

test('--queue turns requests away with 503 once the slots are busy and the queue is full', { timeout: TEST_TIMEOUT_MS }, async () => {
  const small = await startFake({ slots: 1, args: ['--queue', '1'] });
  const holder = new AbortController();
  try {
    await withLogs([small], async () => {
      const hanging = post(small.url, '/api/chat', chatBody('[[fault=hang]]'), { signal: holder.signal }).catch((err) => err);
      await waitForStats(small, (s) => s.in_flight === 1);
      const queued = post(small.url, '/v1/chat/completions', chatBody('queued'));
      await waitForStats(small, (s) => s.waiting === 1);

      const rejected = await post(small.url, '/api/chat', chatBody('third'));
      assert.equal(rejected.status, 503);
      assert.deepEqual(await rejected.json(), { error: 'server busy, please try again.  maximum pending requests exceeded' });
      const rejectedOpenAI = await post(small.url, '/v1/chat/completions', chatBody('fourth'));
      assert.equal(rejectedOpenAI.status, 503);
      checkOpenAIError(await rejectedOpenAI.json(), 503, 'unavailable_error');

      holder.abort();
      assert.equal((await hanging).name, 'AbortError');
      const served = await queued;
      assert.equal(served.status, 200);
      assert.equal((await served.json()).choices[0].message.content, 'queued');
      const stats = await small.stats();
      assert.equal(stats.rejected.busy, 2);
      assert.equal(stats.max_concurrent, 1);
      assert.equal(stats.faults.hang, 1);
    });
  } finally {
    holder.abort();
    await small.stop();
  }
});

// ---- stats --------------------------------------------------------------------------------------

test('/_fake/stats counts endpoints, models and faults, and resets', { timeout: TEST_TIMEOUT_MS }, () =>
  withLogs([fake], async () => {
    await fake.resetStats();
    await post(fake.url, '/api/chat', chatBody('plain'));
    await post(fake.url, '/v1/chat/completions', { ...chatBody('[[fault=http500]]'), model: OTHER_MODEL });
    await post(fake.url, '/v1/chat/completions', chatBody('[[fault=slow_tokens=1]] [[fault=drop]]', { stream: true }))
      .then((res) => res.text())
      .catch(() => {});
    await fetch(`${fake.url}/api/tags`);
    await fetch(`${fake.url}/nowhere`);
    const stats = await fake.stats();
    // The original fields keep their names and meaning.
    for (const field of ['requests', 'in_flight', 'max_concurrent', 'waiting', 'faults'])
      assert.ok(field in stats, `stats lack ${field}`);
    assert.equal(stats.requests, 3);
    assert.equal(stats.in_flight, 0);
    assert.equal(stats.endpoints['/api/chat'], 1);
    assert.equal(stats.endpoints['/v1/chat/completions'], 2);
    assert.equal(stats.endpoints['/api/tags'], 1);
    assert.equal(stats.endpoints.not_found, 1);
    assert.equal(stats.models[DEFAULT_MODEL], 2);
    assert.equal(stats.models[OTHER_MODEL], 1);
    assert.equal(stats.faults.http500, 1);
    assert.equal(stats.faults.drop, 1);
    assert.equal(stats.faults.slow_tokens, 1);
    assert.equal(stats.faults.hang, 0);
    assert.equal(stats.api, 'both');

    await fake.resetStats();
    const reset = await fake.stats();
    assert.equal(reset.requests, 0);
    assert.equal(reset.faults.http500, 0);
    assert.deepEqual(reset.models, {});
  }));
