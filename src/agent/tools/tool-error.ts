/**
 * A refusal or bad input meant for the model: its message becomes an `is_error` tool_result.
 * Messages are one line, say what to do instead, and never contain secrets or host paths
 * outside the worktree.
 */
export class ToolError extends Error {
  override readonly name = 'ToolError';

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
