import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** A prompt file: its frontmatter and body. */
export interface Prompt {
  readonly name: string;
  readonly inputs: readonly string[];
  readonly body: string;
}

/** The prompts/ folder of this installation (next to src/ and dist/). */
export const PROMPTS_DIR = fileURLToPath(new URL('../../prompts/', import.meta.url));

/** Thrown for a malformed prompt file or a missing / undeclared variable. */
export class PromptError extends Error {
  override readonly name = 'PromptError';
}

/** Reads `prompts/<name>.md` and its frontmatter (`name`, `inputs: [a, b]`). */
export function loadPrompt(name: string, dir = PROMPTS_DIR): Prompt {
  const text = readFileSync(`${dir}${name}.md`, 'utf8');
  const match = /^---\n([\s\S]*?)\n---\n([\s\S]*)$/.exec(text);
  if (!match) throw new PromptError(`prompt ${name}: missing frontmatter`);
  const meta = match[1]!;
  const inputs = /^inputs:\s*\[(.*)\]\s*$/m.exec(meta)?.[1];
  if (inputs === undefined) throw new PromptError(`prompt ${name}: frontmatter has no inputs: [...] line`);
  return { name, inputs: inputs.split(',').map((s) => s.trim()).filter(Boolean), body: match[2]! };
}

/**
 * Fills `{{var}}` placeholders. Throws on a placeholder that is not a declared input, and on a
 * declared input without a value: a prompt never goes out half-rendered.
 */
export function renderPrompt(prompt: Prompt, vars: Readonly<Record<string, string | number>>): string {
  for (const input of prompt.inputs) {
    if (!(input in vars)) throw new PromptError(`prompt ${prompt.name}: no value for {{${input}}}`);
  }
  for (const key of Object.keys(vars)) {
    if (!prompt.inputs.includes(key)) throw new PromptError(`prompt ${prompt.name}: ${key} is not a declared input`);
  }
  return prompt.body.replace(/\{\{\s*([a-z_][a-z0-9_]*)\s*\}\}/gi, (_, key: string) => {
    if (!prompt.inputs.includes(key)) throw new PromptError(`prompt ${prompt.name}: {{${key}}} is not a declared input`);
    return String(vars[key]);
  });
}
