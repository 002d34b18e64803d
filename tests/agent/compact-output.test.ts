import { describe, expect, it } from 'vitest';
import { compactOutput, isImportantLine } from '../../src/agent/compact-output.js';

const RED = '\x1b[31m';
const BOLD = '\x1b[1m';
const RESET = '\x1b[0m';

// Distinct, non-numbered words so that passing lines do not fold by digit shape.
const WORDS = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet', 'kilo', 'lima'];
function name(i: number): string {
  return `${WORDS[i % 12]}-${WORDS[Math.floor(i / 12) % 12]}-${WORDS[Math.floor(i / 144) % 12]}`;
}

function npmInstallWithFailingPostinstall(): string {
  const lines: string[] = [];
  for (let i = 0; i < 40; i += 1) lines.push(`npm WARN deprecated ${name(i)}@1.0.${i}: This module is not supported, and leaks memory.`);
  lines.push('⠙ idealTree:lib: sill idealTree buildDeps');
  lines.push('⸨##########⠂⠂⠂⠂⠂⠂⠂⸩ ⠧ reify:esbuild: timing reifyNode:node_modules/esbuild Completed in 412ms');
  lines.push(`${RED}npm ERR!${RESET} code 1`);
  lines.push(`${RED}npm ERR!${RESET} path /work/node_modules/esbuild`);
  lines.push(`${RED}npm ERR!${RESET} command failed`);
  lines.push(`${RED}npm ERR!${RESET} command sh -c node install.js`);
  lines.push(`${RED}npm ERR!${RESET} Error: getaddrinfo ENOTFOUND registry.npmjs.org`);
  lines.push('added 312 packages, and audited 313 packages in 12s');
  lines.push('');
  lines.push('45 packages are looking for funding');
  lines.push('  run `npm fund` for details');
  lines.push('');
  lines.push('found 0 vulnerabilities');
  return lines.join('\n');
}

function vitestFailure(passingBefore: number, passingAfter: number): string {
  const lines: string[] = [` RUN  v4.1.12 /work/repo`, ''];
  const pass = (i: number): string => ` ${BOLD}✓${RESET} tests/${name(i)}.test.ts > handles the ${name(i + 7)} case without errors`;
  for (let i = 0; i < passingBefore; i += 1) lines.push(pass(i));
  lines.push(
    ` ${RED}×${RESET} tests/math.test.ts > adds numbers`,
    '',
    ' FAIL  tests/math.test.ts > adds numbers',
    'AssertionError: expected 2 to be 3 // Object.is equality',
    '',
    '- Expected',
    '+ Received',
    '',
    '- 3',
    '+ 2',
    '',
    ' ❯ tests/math.test.ts:10:17',
    '      8|   it(\'adds numbers\', () => {',
    '      9|     const x = add(1, 1);',
    '     10|     expect(x).toBe(3);',
    '       |               ^',
    '    at Object.<anonymous> (/work/repo/tests/math.test.ts:10:17)',
    '    at runTest (/work/repo/node_modules/@vitest/runner/dist/index.js:781:11)',
  );
  for (let i = 0; i < passingAfter; i += 1) lines.push(pass(passingBefore + i));
  lines.push('', ' Test Files  1 failed | 211 passed (212)', '      Tests  1 failed | 5000 passed (5001)', '   Duration  41.2s');
  return lines.join('\n');
}

describe('compactOutput', () => {
  it('drops npm chatter and spinners but keeps every line of a failing postinstall', () => {
    const raw = npmInstallWithFailingPostinstall();
    const out = compactOutput(raw);
    for (const line of ['npm ERR! code 1', 'npm ERR! command failed', 'npm ERR! command sh -c node install.js', 'npm ERR! Error: getaddrinfo ENOTFOUND registry.npmjs.org']) {
      expect(out).toContain(line);
    }
    expect(out).not.toMatch(/deprecated|looking for funding|npm fund|found 0 vulnerabilities|idealTree|reify/);
    // The outcome of the install is one short line worth keeping.
    expect(out).toContain('added 312 packages, and audited 313 packages in 12s');
    expect(out).not.toContain('\x1b');
    expect(out.length).toBeLessThan(raw.length / 5);
  });

  it('keeps a vitest failure and its stack trace from the middle of 5,000 passing lines', () => {
    const raw = vitestFailure(2_500, 2_500);
    const out = compactOutput(raw);
    expect(raw.length).toBeGreaterThan(200_000);
    expect(out.length).toBeLessThanOrEqual(20_000);
    for (const line of [
      'tests/math.test.ts > adds numbers',
      ' FAIL  tests/math.test.ts > adds numbers',
      'AssertionError: expected 2 to be 3 // Object.is equality',
      '- Expected',
      ' ❯ tests/math.test.ts:10:17',
      '    at Object.<anonymous> (/work/repo/tests/math.test.ts:10:17)',
      '    at runTest (/work/repo/node_modules/@vitest/runner/dist/index.js:781:11)',
      ' Test Files  1 failed | 211 passed (212)',
      '      Tests  1 failed | 5000 passed (5001)',
    ]) {
      expect(out).toContain(line);
    }
    // The passing lines on either side fold into counts.
    expect(out).toContain('… 2500 passing test lines …');
    expect(out.length).toBeLessThan(2_000);
    // Head and tail are kept, in order around the failure.
    expect(out.indexOf(' RUN  v4.1.12')).toBe(0);
    expect(out.indexOf('AssertionError')).toBeLessThan(out.indexOf('Duration  41.2s'));
  });

  it('folds lines that differ only in their digits', () => {
    const lines = Array.from({ length: 5_000 }, (_, i) => `compiled src/generated/module${i + 1}.js (${i % 7}ms)`);
    const out = compactOutput([...lines, ' FAIL  tests/generated.test.ts > case 5001', 'Error: boom'].join('\n'));
    expect(out).toBe(
      ['compiled src/generated/module1.js (0ms)', '… 4998 similar lines …', 'compiled src/generated/module5000.js (1ms)', ' FAIL  tests/generated.test.ts > case 5001', 'Error: boom'].join('\n'),
    );
  });

  it('folds runs of passing-test lines (vitest, jest, pytest) into a count, keeping failures and summaries', () => {
    const raw = [
      ' ✓ tests/a.test.ts (12 tests) 30ms',
      ' ✓ tests/b.test.ts (3 tests) 4ms',
      ' ✓ tests/c.test.ts (40 tests) 51ms',
      ' × tests/d.test.ts > rejects a bad port',
      '    ✓ sums items (2 ms)',
      '    ✓ applies a discount (1 ms)',
      '    ✓ merges quantities',
      'test_inventory.py::test_receive_adds[1] PASSED                          [  0%]',
      'test_inventory.py::test_reorder_point[2.5-3] PASSED                     [ 40%]',
      'test_inventory.py::test_ship_too_much PASSED                            [ 98%]',
      'test_inventory.py::test_value_keeps_cents FAILED                        [100%]',
      ' ✓ built in 1.80s',
      '======================== 1 failed, 122 passed in 2.69s =========================',
    ].join('\n');
    expect(compactOutput(raw)).toBe(
      [
        '… 3 passing test lines …',
        ' × tests/d.test.ts > rejects a bad port',
        '… 6 passing test lines …',
        'test_inventory.py::test_value_keeps_cents FAILED                        [100%]',
        ' ✓ built in 1.80s',
        '======================== 1 failed, 122 passed in 2.69s =========================',
      ].join('\n'),
    );
  });

  it('drops the column markers under quoted code and empty npm error lines', () => {
    const raw = [
      'src/a.ts:75:23 - error TS2339: Property \'prNumber\' does not exist on type \'Item\'.',
      '75     const pr = item.prNumber;',
      '                       ~~~~~~~~',
      '     10|     expect(x).toBe(3);',
      '       |               ^',
      '>           Warehouse().ship("B-9", 1)',
      '                    ^^^^^^^^^^^^^^^',
      'npm error code EUSAGE',
      'npm error',
      'npm error Missing: left-pad@1.3.0 from lock file',
    ].join('\n');
    expect(compactOutput(raw)).toBe(
      [
        'src/a.ts:75:23 - error TS2339: Property \'prNumber\' does not exist on type \'Item\'.',
        '75     const pr = item.prNumber;',
        '     10|     expect(x).toBe(3);',
        '>           Warehouse().ship("B-9", 1)',
        'npm error code EUSAGE',
        'npm error Missing: left-pad@1.3.0 from lock file',
      ].join('\n'),
    );
  });

  it("drops npm's http, verbose and timing log lines but not the errors among them", () => {
    const raw = [
      'npm http fetch GET 200 https://registry.npmjs.org/jest 532ms (cache updated)',
      'npm http cache p-try@https://registry.npmjs.org/p-try/-/p-try-2.2.0.tgz 0ms (cache hit)',
      'npm verbose cli /usr/bin/node /usr/bin/npm',
      'npm timing idealTree Completed in 120ms',
      'npm verbose stack Error: EACCES: permission denied, mkdir /usr/lib/node_modules',
      'npm error code EACCES',
    ].join('\n');
    expect(compactOutput(raw)).toBe(['npm verbose stack Error: EACCES: permission denied, mkdir /usr/lib/node_modules', 'npm error code EACCES'].join('\n'));
  });

  it('does not fold stack frames that differ only in line numbers', () => {
    const frames = Array.from({ length: 8 }, (_, i) => `    at step (/repo/src/a.js:${i + 10}:5)`);
    expect(compactOutput(frames.join('\n'))).toBe(frames.join('\n'));
  });

  it('keeps the last state of a carriage-return progress redraw and drops progress bars', () => {
    const raw = [
      'Downloading model [=>          ] 10%\rDownloading model [=====>      ] 50%\rDownloading model [==========>] 100%\rDownload complete\r\n',
      '   ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━ 12.3/12.3 MB 8.1 MB/s eta 0:00:00\n',
      'Receiving objects: 100% (1234/1234), 2.10 MiB | 4.00 MiB/s, done.\n',
      'remote: Counting objects: 100% (40/40), done.\n',
      'Collecting requests>=2.0\n',
      '  Downloading requests-2.32.3-py3-none-any.whl (64 kB)\n',
      'Successfully installed requests-2.32.3\n',
    ].join('');
    expect(compactOutput(raw)).toBe('Download complete\nSuccessfully installed requests-2.32.3');
  });

  it('strips ANSI colours, cursor codes and spinner backspaces', () => {
    const raw = `${RED}${BOLD}Error:${RESET} cannot find module 'x'\n\x1b[2K\x1b[1Gbuilding |\b/\b-\b\\\bdone\n\x1b]0;title\x07plain`;
    expect(compactOutput(raw)).toBe("Error: cannot find module 'x'\nbuilding done\nplain");
  });

  it('collapses identical lines and blank runs', () => {
    const raw = ['start', ...Array<string>(50).fill('retrying connection'), '', '', '', 'end'].join('\n');
    expect(compactOutput(raw)).toBe('start\nretrying connection (×50)\n\nend');
  });

  it('keeps error lines from the elided middle with a line of context, within maxChars', () => {
    const lines = Array.from({ length: 3_000 }, (_, i) => `compiling unit ${name(i)} into the ${name(i + 5)} bundle`);
    lines[1_500] = 'src/parser.ts(42,7): error TS2322: Type "string" is not assignable to type "number".';
    lines[2_200] = 'warning: unused variable `tmp`';
    const out = compactOutput(lines.join('\n'), { maxChars: 5_000 });
    expect(out.length).toBeLessThanOrEqual(5_000);
    expect(out).toContain(`${lines[1_499]}\n${lines[1_500]}\n${lines[1_501]}`);
    expect(out).toContain(lines[2_200]);
    expect(out).toContain(lines[0]);
    expect(out).toContain(lines[2_999]);
  });

  it('says how many error-like lines it had to leave out when they do not fit', () => {
    const lines = Array.from({ length: 2_000 }, (_, i) => `Error: failure number ${name(i)} in module ${name(i + 3)}`);
    const out = compactOutput(lines.join('\n'), { maxChars: 3_000 });
    expect(out.length).toBeLessThanOrEqual(3_000);
    expect(out).toMatch(/lines elided \(\d+ error-like lines among them\) …/);
  });

  it('cuts a single enormous line in the middle', () => {
    const out = compactOutput(`${'a'.repeat(100_000)}\nError: at the end`);
    expect(out.length).toBeLessThan(3_000);
    expect(out).toMatch(/chars elided/);
    expect(out).toContain('Error: at the end');
  });

  it('is deterministic and leaves short clean output alone', () => {
    const raw = vitestFailure(300, 300);
    expect(compactOutput(raw)).toBe(compactOutput(raw));
    expect(compactOutput('hello\nworld')).toBe('hello\nworld');
    expect(compactOutput('Title\n----------\n| a | b |\n|---|---|')).toBe('Title\n----------\n| a | b |\n|---|---|');
  });
});

describe('isImportantLine', () => {
  it('recognises errors, warnings and stack frames but not passing tests', () => {
    for (const line of ['Traceback (most recent call last):', '  File "app.py", line 3, in <module>', 'panic: runtime error', '    at foo (a.js:1:2)', 'npm ERR! code 1', 'src/a.ts:3:5 - error TS1005']) {
      expect(isImportantLine(line), line).toBe(true);
    }
    for (const line of [' ✓ handles errors gracefully', 'Tests: 0 failed, 12 passed', 'compiling lib']) {
      expect(isImportantLine(line), line).toBe(false);
    }
  });
});
