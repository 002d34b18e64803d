/**
 * Benchmark 4, output compaction: every file of real tool output in `bench/corpus/` goes
 * through the agent's own bash tool (`cat <file>` run by `createBuildTools`, so the raw cap,
 * compaction and redaction are exactly what a build agent's tool result gets), and the
 * result is compared with the raw output: tokens before and after, and whether every line the
 * file's `.keep` sidecar marks (errors, failures, file:line references, final summaries)
 * survived.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { createBuildTools } from '../src/agent/build-tools.js';
import type { BenchRow } from './lib/report.js';

/** Where the corpus lives. */
export const CORPUS_DIR = join(import.meta.dirname, 'corpus');

/** Fewer tokens overall, at least. @default 5 */
export const COMPACTION_TARGET = 5;

/** The token estimate used throughout the benchmarks: four characters a token, as the fake Anthropic counts. */
export function estimateTextTokens(text: string): number {
  return Math.ceil(text.length / 4);
}

/** One corpus file after compaction. */
export interface CompactedFile {
  readonly name: string;
  readonly tokensBefore: number;
  readonly tokensAfter: number;
  readonly marked: number;
  /** Marked lines missing from the compacted output. */
  readonly lost: readonly string[];
}

/** The lines a sidecar marks: one per line, exactly as the tool printed it (ANSI codes removed), blank lines ignored. */
export function readKeep(path: string): string[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '');
}

/** Compacts every corpus file through the real bash tool. */
export async function compactCorpus(dir = CORPUS_DIR): Promise<CompactedFile[]> {
  const tools = await createBuildTools({
    cwd: dir,
    sandbox: { mode: 'never', commandTimeoutMs: 60_000, allowNetwork: false, envAllowList: [] },
    secrets: [],
    log: pino({ level: 'silent' }),
  });
  try {
    const files = readdirSync(dir).filter((f) => f.endsWith('.log')).sort();
    const out: CompactedFile[] = [];
    for (const name of files) {
      const raw = readFileSync(join(dir, name), 'utf8');
      const result = await tools.executors.bash!({ command: `cat ${name}` }, new AbortController().signal);
      if (result.isError) throw new Error(`cat ${name} failed: ${result.content}`);
      const keep = readKeep(join(dir, name.replace(/\.log$/, '.keep')));
      out.push({
        name,
        tokensBefore: estimateTextTokens(raw),
        tokensAfter: estimateTextTokens(result.content),
        marked: keep.length,
        lost: keep.filter((line) => !result.content.includes(line)),
      });
    }
    return out;
  } finally {
    await tools.close();
  }
}

/** The rows of benchmark 4: tokens after vs before overall (ratio target), and recall of marked lines. */
export async function benchCompaction(): Promise<BenchRow[]> {
  const files = await compactCorpus();
  const before = files.reduce((s, f) => s + f.tokensBefore, 0);
  const after = files.reduce((s, f) => s + f.tokensAfter, 0);
  const marked = files.reduce((s, f) => s + f.marked, 0);
  const kept = marked - files.reduce((s, f) => s + f.lost.length, 0);
  const lost = files.flatMap((f) => f.lost.map((line) => `${f.name}: ${line.slice(0, 80)}`));
  const perFile = files.map((f) => `${f.name.replace(/\.log$/, '')} ${(f.tokensBefore / f.tokensAfter).toFixed(1)}×`).join(', ');
  return [
    {
      bench: '4 compaction',
      metric: `tokens after, ${files.length} corpus files`,
      figure: after,
      baseline: before,
      unit: 'tok',
      target: { on: 'ratio', op: '<=', value: 1 / COMPACTION_TARGET },
      note: `${(before / after).toFixed(1)}× fewer overall (${perFile})`,
    },
    {
      bench: '4 compaction',
      metric: 'marked lines kept',
      figure: (100 * kept) / marked,
      baseline: 100,
      unit: '%',
      target: { on: 'figure', op: '>=', value: 100 },
      ...(lost.length > 0 ? { note: `lost ${lost.length} of ${marked}: ${lost.slice(0, 5).join(' | ')}` } : { note: `${kept} of ${marked} kept` }),
    },
  ];
}
