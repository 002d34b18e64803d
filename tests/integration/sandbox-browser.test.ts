import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_SANDBOX_ENV } from '../helpers/bot-process.js';

// `npm run sandbox` end to end, in a real headless Chromium on a phone-sized screen: type a
// request, /run it, wait for the review card, tap Approve, and see "Merged" on the card and on
// the PR page. The sandbox is started the way npm starts it (`node dist/sandbox/main.js`), so
// the printed URL and the Ctrl-C shutdown are tested too.

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const SANDBOX_MAIN = resolve(import.meta.dirname, '../../dist/sandbox/main.js');
const ARTIFACTS = resolve(import.meta.dirname, '../../test-artifacts');
/** Without these Chromium stalls on a machine with a closed network. */
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const STEP_MS = 90_000;

const haveChromium = existsSync(CHROMIUM);
if (!haveChromium && process.env.CI === 'true') {
  throw new Error(`${CHROMIUM} is missing; .ci/run installs it (apt-get install chromium)`);
}
if (!haveChromium) {
  console.warn(`sandbox browser test skipped: ${CHROMIUM} is missing (apt-get install chromium, or set CHROMIUM_PATH)`);
}

describe.skipIf(!haveChromium)('npm run sandbox in a browser', () => {
  let context: BrowserContext;
  let page: Page;
  let url: string;
  let launcher: ChildProcess;
  let exited: Promise<number | string>;
  let output = '';
  const dataDir = join(mkdtempSync(join(tmpdir(), 'ns-sandbox-')), 'data');

  beforeAll(async () => {
    launcher = spawn(process.execPath, [SANDBOX_MAIN, '--port', '0', '--data-dir', dataDir], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...TEST_SANDBOX_ENV } });
    launcher.stdout!.on('data', (c: Buffer) => (output += c.toString()));
    launcher.stderr!.on('data', (c: Buffer) => (output += c.toString()));
    exited = once(launcher, 'close').then(([code, signal]) => (code as number | null) ?? (signal as string));
    url = await new Promise<string>((resolveUrl, reject) => {
      const timer = setTimeout(() => reject(new Error(`no URL printed within 60 s:\n${output}`)), 60_000);
      const check = (): void => {
        const m = /Open (http:\/\/127\.0\.0\.1:\d+)\//.exec(output);
        if (m) {
          clearTimeout(timer);
          resolveUrl(m[1]!);
        }
      };
      launcher.stdout!.on('data', check);
      void exited.then(() => reject(new Error(`the sandbox exited before printing a URL:\n${output}`)));
    });
    mkdirSync(ARTIFACTS, { recursive: true });
    context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'ns-chromium-')), {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 390, height: 844 },
    });
    page = context.pages()[0] ?? (await context.newPage());
  }, 120_000);

  afterAll(async () => {
    await context?.close();
    if (launcher && launcher.exitCode === null) launcher.kill('SIGKILL');
    await exited;
  });

  const botMessage = (text: RegExp) => page.locator('.msg.bot', { hasText: text }).last();
  const send = async (text: string): Promise<void> => {
    await page.getByLabel('Message').fill(text);
    await page.getByLabel('Message').press('Enter');
  };

  it('goes from a typed request to a merged PR by tapping, and stops cleanly on Ctrl-C', { timeout: 300_000 }, async () => {
    // One URL, and nothing that looks like a credential, is printed.
    expect(output.match(/https?:\/\/\S+/g)).toHaveLength(1);
    await page.goto(`${url}/`);
    await page.getByText(/Chatting with @/).waitFor({ timeout: STEP_MS });

    await send('Add a farewell function');
    await page.locator('.msg.user', { hasText: 'Add a farewell function' }).waitFor({ timeout: STEP_MS });
    // Sized first (the sandbox model says it fits), then queued.
    await botMessage(/Sizing #1/).waitFor({ timeout: STEP_MS });
    await botMessage(/#1 .*is queued\./).waitFor({ timeout: STEP_MS });
    await send('/run');

    // The card: verdict first, three decisions.
    const card = page.locator('.msg.bot', { has: page.getByRole('button', { name: /Approve/ }) }).last();
    await card.waitFor({ timeout: STEP_MS });
    const cardText = await card.innerText();
    expect(cardText).toMatch(/Reviewed: ready to merge/);
    expect(cardText).toMatch(/PR #1/);
    // Review, triage and fix all ran on the sandbox model's change, and say whose words they are.
    expect(cardText).toMatch(/Bots fixed 1: \[sandbox model\] No test covers src\/requests\/item-1\.ts/);
    expect(cardText).toMatch(/test\/item-1\.test\.ts/);
    expect(await page.locator('.msg.bot', { hasText: /\[sandbox model\] Summary:/ }).count()).toBe(1);
    await page.screenshot({ path: join(ARTIFACTS, 'sandbox-card.png'), fullPage: true });

    await card.getByRole('button', { name: /Approve/ }).click();
    const merged = botMessage(/Merged by @you/);
    await merged.waitFor({ timeout: STEP_MS });
    expect(await merged.getByRole('button').count()).toBe(0);

    // A photo: the /costs chart appears in the chat as an image the browser could decode.
    await send('/costs');
    const chart = page.locator('.msg.bot img').last();
    await chart.waitFor({ timeout: STEP_MS });
    await page.waitForFunction((img) => { const image = img as unknown as { complete: boolean; naturalWidth: number } | null; return image !== null && image.complete && image.naturalWidth > 0; }, await chart.elementHandle(), { timeout: STEP_MS });

    // The PR page behind the card's link shows the merge and the diff.
    const href = await merged.getByRole('link', { name: /PR #1/ }).getAttribute('href');
    expect(href).toBe(`${url}/github/sandbox/hello/pull/1`);
    const pr = await context.newPage();
    await pr.goto(href!);
    await pr.locator('[data-state="Merged"]').waitFor({ timeout: STEP_MS });
    expect(await pr.locator('.diff').innerText()).toMatch(/\+export const request1/);
    await page.screenshot({ path: join(ARTIFACTS, 'sandbox-merged.png'), fullPage: true });
    await pr.screenshot({ path: join(ARTIFACTS, 'sandbox-pr.png'), fullPage: true });

    // Ctrl-C: the launcher stops the bot and the stand-ins and exits 0.
    launcher.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(readFileSync(join(dataDir, 'nightshift.log'), 'utf8')).toMatch(/"msg":"stopped"/);
    await expect(fetch(`${url}/api/chat`)).rejects.toThrow();
  });
});
