import { describe, expect, it } from 'vitest';
import { createRedactor, REDACTED } from '../../src/domain/redact.js';

describe('createRedactor', () => {
  it('replaces secrets, also URL-encoded, and leaves other text alone', () => {
    const redact = createRedactor(['123:CANARY-token-abc', 'short']);
    expect(redact('GET /bot123:CANARY-token-abc/getMe and /bot123%3ACANARY-token-abc/x short')).toBe(
      `GET /bot${REDACTED}/getMe and /bot${REDACTED}/x short`,
    );
  });

  it('is the identity with no secrets', () => {
    expect(createRedactor([])('abc')).toBe('abc');
  });
});
