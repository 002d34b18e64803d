import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CONFIG_VARIABLES } from '../src/config.js';

describe('documentation', () => {
  const readme = readFileSync('README.md', 'utf8');
  const example = readFileSync('.env.example', 'utf8');

  it.each(CONFIG_VARIABLES)('documents %s in README.md and .env.example', (variable) => {
    expect(readme).toContain(`\`${variable}\``);
    expect(example).toMatch(new RegExp(`^#? ?${variable}=`, 'm'));
  });

  it('shows the test command CI runs in the quick start', () => {
    expect(readme).toContain('npm ci && npm test');
    expect(readFileSync('.ci/run', 'utf8')).toContain('npm ci && npm test');
  });
});
