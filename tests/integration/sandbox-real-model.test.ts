import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startFakeAnthropic, type FakeAnthropic } from '../../src/sandbox/anthropic-server.js';
import { startSandbox, type Sandbox } from '../../src/sandbox/main.js';
import { answerAsSandboxModel } from '../../src/sandbox/sandbox-model.js';

// `npm run sandbox -- --real-model`: the bot talks to the Anthropic API named by the caller's
// ANTHROPIC_BASE_URL with the caller's ANTHROPIC_API_KEY (here a stand-in playing the real API),
// while Telegram and GitHub stay stand-ins.

const KEY = 'sk-ant-CANARY-real-model-key-0123456789';
let api: FakeAnthropic | undefined;
let sandbox: Sandbox | undefined;

afterEach(async () => {
  await sandbox?.stop();
  await api?.close();
});

const post = (url: string, body: unknown) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

describe('the sandbox with --real-model', () => {
  it("sends the model calls to the caller's API with the caller's key and never shows the key", { timeout: 120_000 }, async () => {
    api = await startFakeAnthropic({ apiKey: KEY });
    api.onRequest(answerAsSandboxModel);
    const dataDir = join(mkdtempSync(join(tmpdir(), 'ns-sandbox-real-')), 'data');
    sandbox = await startSandbox({ port: 0, dataDir, reset: false, realModel: true }, { PATH: process.env.PATH, HOME: process.env.HOME, ANTHROPIC_API_KEY: KEY, ANTHROPIC_BASE_URL: api.baseUrl });
    await post(`${sandbox.url}/api/send`, { text: 'Add a farewell function' });
    const first = await api.waitFor(() => api!.requests[0], { timeoutMs: 60_000, what: 'the first model call' });
    expect(first.headers.authorization).toBe(`Bearer ${KEY}`);
    expect(first.status).toBe(200);
    const chat = await (await fetch(`${sandbox.url}/api/chat`)).text();
    // The first call sizes the request.
    expect(first.body).toMatchObject({ tool_choice: { name: 'report_size' } });
    expect(chat).toContain('Sizing #1');
    expect(chat).not.toContain(KEY);
  });

  it('refuses to start without ANTHROPIC_API_KEY, saying which variable is missing', async () => {
    const dataDir = join(mkdtempSync(join(tmpdir(), 'ns-sandbox-real-')), 'data');
    await expect(startSandbox({ port: 0, dataDir, reset: false, realModel: true }, { PATH: process.env.PATH })).rejects.toThrow(/--real-model needs ANTHROPIC_API_KEY/);
  });
});
