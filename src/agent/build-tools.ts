import type { Logger } from 'pino';
import type { ToolParam } from '../llm/model-client.js';
import type { ToolExecutor } from './run-agent.js';
import { createCommandRunner, type SandboxMode } from './tools/run-command.js';
import { createTextEditor } from './tools/text-editor.js';
import { ToolError } from './tools/tool-error.js';

/** How agent commands run (from config). */
export interface SandboxSettings {
  readonly mode: SandboxMode;
  readonly commandTimeoutMs: number;
  readonly allowNetwork: boolean;
  readonly envAllowList: readonly string[];
}

/** Raw command output kept per call before compaction. @default 2 MiB */
export const COMMAND_OUTPUT_CAP_BYTES = 2 * 1024 * 1024;

/** The tools of a build or fix agent, bound to one worktree. */
export interface BuildTools {
  readonly tools: readonly ToolParam[];
  readonly executors: Readonly<Record<string, ToolExecutor>>;
  /** Kills anything still running and cleans up. */
  close(): Promise<void>;
}

/** Anthropic's bash and text-editor client tools, confined to `cwd`. */
export async function createBuildTools(opts: { cwd: string; sandbox: SandboxSettings; secrets: readonly string[]; log: Logger }): Promise<BuildTools> {
  const runner = await createCommandRunner({
    cwd: opts.cwd,
    timeoutMs: opts.sandbox.commandTimeoutMs,
    outputCapBytes: COMMAND_OUTPUT_CAP_BYTES,
    allowNetwork: opts.sandbox.allowNetwork,
    envAllowList: opts.sandbox.envAllowList,
    secrets: opts.secrets,
    useSandbox: opts.sandbox.mode,
    log: opts.log,
  });
  const editor = createTextEditor({ root: opts.cwd, secrets: opts.secrets });

  const bash: ToolExecutor = async (input, signal) => {
    const { command, restart } = (input ?? {}) as { command?: unknown; restart?: unknown };
    if (restart === true) return { content: 'Shell restarted. (Every command runs in a fresh shell anyway.)', isError: false };
    if (typeof command !== 'string' || command.trim() === '') return { content: 'bash needs a non-empty "command" string.', isError: true };
    const result = await runner.run(command, signal);
    const status = result.timedOut ? `[timed out after ${Math.round(opts.sandbox.commandTimeoutMs / 1000)} s and was killed]` : `[exit code ${result.exitCode ?? 'none'}]`;
    return { content: `${result.output}${result.output.endsWith('\n') || result.output === '' ? '' : '\n'}${status}`, isError: false };
  };
  const edit: ToolExecutor = async (input) => {
    try {
      return { content: await editor.execute(input), isError: false };
    } catch (error) {
      if (error instanceof ToolError) return { content: error.message, isError: true };
      throw error;
    }
  };

  return {
    tools: [
      { type: 'bash_20250124', name: 'bash' },
      { type: 'text_editor_20250728', name: 'str_replace_based_edit_tool' },
    ],
    executors: { bash, str_replace_based_edit_tool: edit },
    close: () => runner.close(),
  };
}
