// `offload config check FILE`: every configuration shipped in configs/ loads, a bad key is
// refused with its file, line and name, and a configuration with chaos on says so loudly.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { OFFLOAD_BIN, REPO_ROOT, TEST_TIMEOUT_MS } from './helpers.mjs';

function run(args) {
  return new Promise((resolve) => {
    execFile(OFFLOAD_BIN, args, (error, stdout, stderr) =>
      resolve({ code: error ? error.code : 0, stdout, stderr }));
  });
}

let dir;
before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'offload-config-check-'));
});
after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('every daemon configuration in configs/ passes the check', { timeout: TEST_TIMEOUT_MS }, async () => {
  const configs = readdirSync(path.join(REPO_ROOT, 'configs')).filter((f) => /^offload.*\.yaml$/.test(f));
  assert.ok(configs.includes('offload.yaml'), configs.join(', '));
  for (const name of configs) {
    const file = path.join(REPO_ROOT, 'configs', name);
    const result = await run(['config', 'check', file]);
    assert.equal(result.code, 0, `${name}: ${result.stdout}${result.stderr}`);
    assert.match(result.stdout, new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: OK \\(`));
    // Only the chaos example turns chaos on, and the check says so.
    assert.equal(/chaos is ON/.test(result.stdout), name === 'offload-chaos.yaml', `${name}: ${result.stdout}`);
  }
});

test('a bad key or value is refused with the file, line and key', { timeout: TEST_TIMEOUT_MS }, async () => {
  const unknown = path.join(dir, 'unknown.yaml');
  writeFileSync(unknown, 'default_model: a\nbatch:\n  max_taks: 3\n');
  let result = await run(['config', 'check', unknown]);
  assert.equal(result.code, 1);
  assert.match(result.stdout, new RegExp(`${unknown}:3: .*max_taks`));

  const probability = path.join(dir, 'chaos.yaml');
  writeFileSync(probability, 'chaos:\n  enabled: true\n  kill_task: 1.5\n');
  result = await run(['config', 'check', probability]);
  assert.equal(result.code, 1);
  assert.match(result.stdout, /chaos\.yaml:3: chaos\.kill_task is a probability and must be between 0 and 1, got 1\.5/);
});
