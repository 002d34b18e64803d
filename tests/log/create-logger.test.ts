import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

// Regression: pino's default stdout destination retried a failed write forever when the process
// exited, so a bot whose log reader had died (the sandbox launcher killed, `| tee` gone) hung at
// exit and ignored SIGTERM. The logger now drops lines for a reader that is gone.

const LOGGER = resolve(import.meta.dirname, '../../dist/log/create-logger.js');

describe('createLogger on stdout', () => {
  it('lets the process log and exit after the reader of its stdout went away', { timeout: 30_000 }, async () => {
    const script = `
      const { createLogger } = await import(${JSON.stringify(LOGGER)});
      const log = createLogger({ level: 'info', secrets: ['canary-secret-value'] });
      log.info('first line');
      process.stdin.once('data', () => {
        for (let i = 0; i < 200; i++) log.warn({ i }, 'a line nobody reads');
        process.exit(0);
      });`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
    const [first] = (await once(child.stdout!, 'data')) as [Buffer];
    expect(first.toString()).toContain('first line');
    child.stdout!.destroy();
    const exited = once(child, 'exit');
    child.stdin!.write('go\n');
    const deadline = new Promise((_, reject) => setTimeout(() => reject(new Error('the process hung at exit')), 10_000).unref());
    const [code] = (await Promise.race([exited, deadline])) as [number | null];
    expect(code).toBe(0);
  });

  it('still writes every line, redacted, while the reader is there', { timeout: 30_000 }, async () => {
    const script = `
      const { createLogger } = await import(${JSON.stringify(LOGGER)});
      const log = createLogger({ level: 'info', secrets: ['canary-secret-value'] });
      for (let i = 0; i < 500; i++) log.info({ i }, 'token canary-secret-value in a message');`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    await once(child, 'close');
    const lines = out.trim().split('\n');
    expect(lines).toHaveLength(500);
    expect(out).not.toContain('canary-secret-value');
    expect(JSON.parse(lines[499]!)).toMatchObject({ i: 499 });
  });
});
