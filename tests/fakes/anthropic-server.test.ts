import Anthropic, {
  AnthropicError,
  APIConnectionError,
  APIConnectionTimeoutError,
  APIError,
  APIUserAbortError,
  AuthenticationError,
  BadRequestError,
  InternalServerError,
  NotFoundError,
  OverloadedError,
  RateLimitError,
  type ClientOptions,
} from '@anthropic-ai/sdk';
import type { ContentBlock, MessageParam, TextBlockParam, ToolUnion } from '@anthropic-ai/sdk/resources/messages';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  CACHE_LOOKBACK_BLOCKS,
  CACHE_TTL_MS,
  MIN_CACHEABLE_TOKENS,
  estimateTokens,
  minCacheableTokens,
  startFakeAnthropic,
  type FakeAnthropic,
  type FakeAnthropicOptions,
} from './anthropic-server.js';

const MODEL = 'claude-sonnet-4-6';
/** Comfortably above every model's minimum cacheable length on its own. */
const BIG_SYSTEM = 'You review pull requests for correctness, tests and cost. '.repeat(300);
const AGENT_TOOLS: ToolUnion[] = [
  { type: 'bash_20250124', name: 'bash' },
  { type: 'text_editor_20250728', name: 'str_replace_based_edit_tool' },
];
const REPORT_TOOL: ToolUnion = {
  name: 'report_findings',
  description: 'Report the review findings.',
  input_schema: {
    type: 'object',
    properties: { verdict: { type: 'string', enum: ['approve', 'changes'] }, findings: { type: 'array', items: { type: 'string' } } },
    required: ['verdict', 'findings'],
  },
};

let fake: FakeAnthropic;
const extraFakes: FakeAnthropic[] = [];

beforeEach(async () => {
  fake = await startFakeAnthropic();
});

afterEach(async () => {
  await Promise.all([fake, ...extraFakes.splice(0)].map((f) => f.close()));
});

/** A real SDK client against `target`, with the production retry default unless overridden. */
function client(opts: Partial<ClientOptions> = {}, target: FakeAnthropic = fake): Anthropic {
  return new Anthropic({ apiKey: target.apiKey, baseURL: target.baseUrl, maxRetries: 2, ...opts });
}

async function startExtra(opts: FakeAnthropicOptions): Promise<FakeAnthropic> {
  const started = await startFakeAnthropic(opts);
  extraFakes.push(started);
  return started;
}

/** The rejection of `promise`, which must be an instance of `type`. */
async function rejection<E extends Error>(promise: Promise<unknown>, type: abstract new (...args: never[]) => E): Promise<E> {
  const err: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(type);
  return err as E;
}

/** Content blocks without the fields the API adds (citations, caller), to compare with a script. */
function plain(content: ContentBlock[]): unknown[] {
  return content.map((b) => {
    if (b.type === 'text') return { type: 'text', text: b.text };
    if (b.type === 'tool_use') return { type: 'tool_use', id: b.id, name: b.name, input: b.input };
    return b;
  });
}

/** Tokens the fake counts for a message's string content (one text block). */
const textTokens = (text: string): number => estimateTokens({ type: 'text', text });
const cached = (text: string, ttl?: '5m' | '1h'): TextBlockParam => ({
  type: 'text',
  text,
  cache_control: ttl ? { type: 'ephemeral', ttl } : { type: 'ephemeral' },
});

describe('replies', () => {
  it('answers a non-streaming create with the scripted text and a full Message', async () => {
    fake.script({ content: [{ type: 'text', text: 'All good.' }] });
    const msg = await client().messages.create({ model: MODEL, max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] });
    expect(plain(msg.content)).toEqual([{ type: 'text', text: 'All good.' }]);
    expect(msg).toMatchObject({
      id: 'msg_fake_1',
      type: 'message',
      role: 'assistant',
      model: MODEL,
      stop_reason: 'end_turn',
      stop_sequence: null,
    });
    expect(msg.usage).toMatchObject({
      input_tokens: textTokens('hi'),
      output_tokens: estimateTokens([{ type: 'text', text: 'All good.' }]),
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
      service_tier: 'standard',
    });
    expect(msg._request_id).toMatch(/^req_fake_/);
    expect(fake.requests).toHaveLength(1);
    expect(fake.requests[0]).toMatchObject({ path: '/v1/messages', stream: false, outcome: 'ok', status: 200 });
    expect(fake.requests[0]!.headers['anthropic-version']).toBeTruthy();
  });

  it('streams a scripted text in several text_delta events that add up to the script', async () => {
    const text = 'The change looks right; one test is missing for the empty input case.';
    fake.script({ content: [{ type: 'text', text }], outputTokens: 42 });
    const stream = client().messages.stream({ model: MODEL, max_tokens: 100, messages: [{ role: 'user', content: 'review' }] });
    const deltas: string[] = [];
    const eventTypes: string[] = [];
    stream.on('text', (delta) => deltas.push(delta));
    stream.on('streamEvent', (event) => eventTypes.push(event.type));
    const msg = await stream.finalMessage();
    expect(plain(msg.content)).toEqual([{ type: 'text', text }]);
    expect(deltas.length).toBeGreaterThan(1);
    expect(deltas.join('')).toBe(text);
    expect(eventTypes).toEqual([
      'message_start',
      'content_block_start',
      ...deltas.map(() => 'content_block_delta'),
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    expect(msg.usage.output_tokens).toBe(42);
    expect(msg.stop_reason).toBe('end_turn');
    expect(fake.requests[0]).toMatchObject({ stream: true, outcome: 'ok' });
  });

  it('runs a tool_use turn round trip with the client tools', async () => {
    fake.script(
      { content: [{ type: 'text', text: 'Listing files.' }, { type: 'tool_use', name: 'bash', input: { command: 'ls -la src' } }] },
      { content: [{ type: 'text', text: 'Done.' }] },
    );
    const c = client();
    const messages: MessageParam[] = [{ role: 'user', content: 'What is in src?' }];
    const stream = c.messages.stream({ model: MODEL, max_tokens: 1000, tools: AGENT_TOOLS, messages });
    const jsonPieces: string[] = [];
    stream.on('inputJson', (piece) => jsonPieces.push(piece));
    const first = await stream.finalMessage();
    expect(first.stop_reason).toBe('tool_use');
    expect(plain(first.content)).toEqual([
      { type: 'text', text: 'Listing files.' },
      { type: 'tool_use', id: 'toolu_fake_1', name: 'bash', input: { command: 'ls -la src' } },
    ]);
    expect(jsonPieces.length).toBeGreaterThanOrEqual(2);
    expect(jsonPieces.join('')).toBe(JSON.stringify({ command: 'ls -la src' }));

    messages.push({ role: 'assistant', content: first.content });
    messages.push({ role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_fake_1', content: 'index.ts\nmain.ts' }] });
    const second = await c.messages.stream({ model: MODEL, max_tokens: 1000, tools: AGENT_TOOLS, messages }).finalMessage();
    expect(plain(second.content)).toEqual([{ type: 'text', text: 'Done.' }]);
    expect(fake.requests[1]!.body.messages[2].content[0]).toMatchObject({ type: 'tool_result', tool_use_id: 'toolu_fake_1' });
    expect(fake.requests[1]!.body.tools).toEqual(AGENT_TOOLS);
  });

  it('answers a forced tool call for structured output, keeping a scripted tool_use id', async () => {
    const input = { verdict: 'changes', findings: ['missing test for empty input'] };
    fake.script({ content: [{ type: 'tool_use', id: 'toolu_review_7', name: 'report_findings', input }] });
    const msg = await client().messages.create({
      model: MODEL,
      max_tokens: 500,
      tools: [REPORT_TOOL],
      tool_choice: { type: 'tool', name: 'report_findings' },
      messages: [{ role: 'user', content: 'Review this diff.' }],
    });
    expect(plain(msg.content)).toEqual([{ type: 'tool_use', id: 'toolu_review_7', name: 'report_findings', input }]);
    expect(msg.stop_reason).toBe('tool_use');
  });

  it('builds replies from functions and the onRequest fallback, and honours a scripted stop_reason', async () => {
    fake.script((req) => ({ content: [{ type: 'text', text: `seen ${req.body.messages.length} message(s)` }] }));
    fake.onRequest((req) => ({ content: [{ type: 'text', text: `fallback for #${req.seq}` }], stop_reason: 'max_tokens' }));
    const c = client();
    const ask = (): Promise<Anthropic.Message> =>
      c.messages.create({ model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'x' }] });
    const first = await ask();
    const second = await ask();
    expect(plain(first.content)).toEqual([{ type: 'text', text: 'seen 1 message(s)' }]);
    expect(plain(second.content)).toEqual([{ type: 'text', text: 'fallback for #2' }]);
    expect(second.stop_reason).toBe('max_tokens');
  });

  it('answers 500 "fake: no scripted reply" when nothing is scripted', async () => {
    const err = await rejection(
      client({ maxRetries: 0 }).messages.create({ model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'x' }] }),
      InternalServerError,
    );
    expect(err.status).toBe(500);
    expect(err.apiMessage).toBe('fake: no scripted reply');
    expect(fake.requests[0]).toMatchObject({ outcome: 'error', status: 500 });
    expect(fake.requests[0]!.usage).toBeUndefined();
  });

  it('counts tokens on /v1/messages/count_tokens without consuming a reply', async () => {
    fake.script({ content: [{ type: 'text', text: 'unused' }] });
    const counted = await client().messages.countTokens({
      model: MODEL,
      system: 'Be brief.',
      messages: [{ role: 'user', content: 'hello there' }],
    });
    expect(counted.input_tokens).toBe(textTokens('Be brief.') + textTokens('hello there'));
    expect(fake.requests[0]).toMatchObject({ path: '/v1/messages/count_tokens', outcome: 'ok' });
    expect(fake.totalUsage().input_tokens).toBe(0);
  });

  it('sums usage over answered requests', async () => {
    fake.script({ content: [{ type: 'text', text: 'one' }] }, { content: [{ type: 'text', text: 'two' }], outputTokens: 7 });
    const c = client();
    const a = await c.messages.create({ model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'first' }] });
    const b = await c.messages.stream({ model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'second' }] }).finalMessage();
    expect(fake.totalUsage()).toEqual({
      input_tokens: a.usage.input_tokens + b.usage.input_tokens,
      output_tokens: a.usage.output_tokens + 7,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
    });
  });
});

describe('request validation', () => {
  it('refuses a wrong API key with 401, which the SDK does not retry', async () => {
    fake.script({ content: [{ type: 'text', text: 'never sent' }] });
    const wrong = new Anthropic({ apiKey: 'sk-ant-wrong', baseURL: fake.baseUrl, maxRetries: 2 });
    const err = await rejection(
      wrong.messages.create({ model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'x' }] }),
      AuthenticationError,
    );
    expect(err.status).toBe(401);
    expect(err.type).toBe('authentication_error');
    expect(err.apiMessage).toBe('Invalid bearer token'); // SDK 1.x sends the key as a bearer token
    expect(fake.requests).toHaveLength(1);
    expect(fake.requests[0]!.headers.authorization).toBe('Bearer sk-ant-wrong');
  });

  it('refuses a tool_use without a tool_result in the next message (400, not retried)', async () => {
    fake.script({ content: [{ type: 'text', text: 'never sent' }] });
    const err = await rejection(
      client().messages.create({
        model: MODEL,
        max_tokens: 100,
        tools: AGENT_TOOLS,
        messages: [
          { role: 'user', content: 'List files.' },
          { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_dangling', name: 'bash', input: { command: 'ls' } }] },
          { role: 'user', content: 'Well?' },
        ],
      }),
      BadRequestError,
    );
    expect(err.type).toBe('invalid_request_error');
    expect(err.apiMessage).toBe(
      'messages.2: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_dangling. ' +
        'Each `tool_use` block must have a corresponding `tool_result` block in the next message.',
    );
    expect(fake.requests).toHaveLength(1);
    expect(fake.requests[0]).toMatchObject({ outcome: 'error', status: 400 });
  });

  it('refuses a tool_result that answers no tool_use, and turns that do not alternate', async () => {
    const c = client({ maxRetries: 0 });
    const orphan = await rejection(
      c.messages.create({
        model: MODEL,
        max_tokens: 100,
        messages: [{ role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_nowhere', content: 'x' }] }],
      }),
      BadRequestError,
    );
    expect(orphan.apiMessage).toContain('unexpected `tool_use_id` found in `tool_result` blocks: toolu_nowhere');
    const twice = await rejection(
      c.messages.create({
        model: MODEL,
        max_tokens: 100,
        messages: [
          { role: 'user', content: 'a' },
          { role: 'user', content: 'b' },
        ],
      }),
      BadRequestError,
    );
    expect(twice.apiMessage).toContain('roles must alternate');
    const assistantFirst = await rejection(
      c.messages.create({ model: MODEL, max_tokens: 100, messages: [{ role: 'assistant', content: 'a' }] }),
      BadRequestError,
    );
    expect(assistantFirst.apiMessage).toBe('messages: first message must use the "user" role');
  });

  it('refuses a forced tool_choice naming a tool that is not in tools', async () => {
    const err = await rejection(
      client().messages.create({
        model: MODEL,
        max_tokens: 100,
        tools: [REPORT_TOOL],
        tool_choice: { type: 'tool', name: 'report_verdict' },
        messages: [{ role: 'user', content: 'x' }],
      }),
      BadRequestError,
    );
    expect(err.apiMessage).toContain("'report_verdict'");
  });

  it('requires the anthropic-version header and a positive max_tokens', async () => {
    const post = (headers: Record<string, string>, body: unknown): Promise<Response> =>
      fetch(`${fake.baseUrl}/v1/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': fake.apiKey, ...headers },
        body: JSON.stringify(body),
      });
    const body = { model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'x' }] };
    const noVersion = await post({}, body);
    expect(noVersion.status).toBe(400);
    expect(await noVersion.json()).toMatchObject({
      type: 'error',
      error: { type: 'invalid_request_error', message: 'anthropic-version: header is required' },
    });
    const zero = await post({ 'anthropic-version': '2023-06-01' }, { ...body, max_tokens: 0 });
    expect(zero.status).toBe(400);
    expect(zero.headers.get('request-id')).toMatch(/^req_fake_/);
    expect(await zero.json()).toMatchObject({ error: { message: 'max_tokens: Input should be greater than or equal to 1' } });
  });

  it('answers 404 not_found_error for a model it was not told about', async () => {
    const strict = await startExtra({ model: [MODEL, 'claude-opus-4-6'] });
    const err = await rejection(
      client({}, strict).messages.create({ model: 'claude-nonexistent-1', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] }),
      NotFoundError,
    );
    expect(err.apiMessage).toBe('model: claude-nonexistent-1');
  });
});

describe('prompt caching', () => {
  it(`refuses more than 4 cache_control blocks with the API's message`, async () => {
    const err = await rejection(
      client().messages.create({
        model: MODEL,
        max_tokens: 100,
        tools: [{ ...REPORT_TOOL, cache_control: { type: 'ephemeral' } } as ToolUnion],
        system: [cached('one'), cached('two')],
        messages: [{ role: 'user', content: [cached('three'), cached('four'), cached('five')] }],
      }),
      BadRequestError,
    );
    expect(err.apiMessage).toBe('A maximum of 4 blocks with cache_control may be provided. Found 6.');
    expect(fake.requests).toHaveLength(1);
  });

  it('writes a large system prompt on the first request and reads it on the second', async () => {
    fake.script({ content: [{ type: 'text', text: 'a' }] }, { content: [{ type: 'text', text: 'b' }] });
    const systemTokens = textTokens(BIG_SYSTEM);
    expect(systemTokens).toBeGreaterThanOrEqual(minCacheableTokens(MODEL));
    const c = client();
    const request = {
      model: MODEL,
      max_tokens: 100,
      system: [cached(BIG_SYSTEM)],
      messages: [{ role: 'user' as const, content: 'Review PR 12.' }],
    };
    const first = await c.messages.create(request);
    expect(first.usage).toMatchObject({
      cache_creation_input_tokens: systemTokens,
      cache_read_input_tokens: 0,
      input_tokens: textTokens('Review PR 12.'),
      cache_creation: { ephemeral_5m_input_tokens: systemTokens, ephemeral_1h_input_tokens: 0 },
    });
    const second = await c.messages.stream(request).finalMessage();
    expect(second.usage).toMatchObject({
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: first.usage.cache_creation_input_tokens,
      input_tokens: textTokens('Review PR 12.'),
    });
    expect(fake.requests.map((r) => r.usage?.cache_read_input_tokens)).toEqual([0, systemTokens]);
  });

  it('has the documented minimum cacheable length per model: Opus 4096, Sonnet 2048', () => {
    expect(minCacheableTokens('claude-opus-4-6')).toBe(4096);
    expect(minCacheableTokens('claude-sonnet-4-6')).toBe(2048);
    expect(minCacheableTokens('claude-haiku-4-5')).toBe(4096);
    expect(minCacheableTokens('some-other-model')).toBe(MIN_CACHEABLE_TOKENS);
  });

  it("caches a prefix long enough for Sonnet but not for Opus only on Sonnet", async () => {
    fake.onRequest(() => ({ content: [{ type: 'text', text: 'ok' }] }));
    const c = client();
    const system = 'Twelve chars'.repeat(1000); // about 3000 tokens: between the two minimums
    const tokens = textTokens(system);
    expect(tokens).toBeGreaterThan(minCacheableTokens(MODEL));
    expect(tokens).toBeLessThan(minCacheableTokens('claude-opus-4-6'));
    const ask = async (model: string) =>
      (await c.messages.create({ model, max_tokens: 10, system: [cached(system)], messages: [{ role: 'user', content: 'go' }] })).usage;
    expect((await ask(MODEL)).cache_creation_input_tokens).toBe(tokens);
    expect((await ask(MODEL)).cache_read_input_tokens).toBe(tokens);
    const opus = await ask('claude-opus-4-6');
    expect(opus).toMatchObject({ cache_creation_input_tokens: 0, cache_read_input_tokens: 0 });
    expect((await ask('claude-opus-4-6')).cache_read_input_tokens).toBe(0);
  });

  it('makes an entry readable only once the writing response has started (firstByteDelayMs)', async () => {
    const slow = await startExtra({ firstByteDelayMs: 150 });
    slow.onRequest(() => ({ content: [{ type: 'text', text: 'ok' }] }));
    const c = client({}, slow);
    const ask = async () =>
      (await c.messages.stream({ model: MODEL, max_tokens: 10, system: [cached(BIG_SYSTEM)], messages: [{ role: 'user', content: 'go' }] }).finalMessage()).usage;
    const tokens = textTokens(BIG_SYSTEM);
    // Sent side by side: the second arrives before the first's response has started, so both write.
    const [a, b] = await Promise.all([ask(), ask()]);
    expect([a.cache_creation_input_tokens, b.cache_creation_input_tokens]).toEqual([tokens, tokens]);
    expect([a.cache_read_input_tokens, b.cache_read_input_tokens]).toEqual([0, 0]);
    // After a response has started, the entry is there.
    expect((await ask()).cache_read_input_tokens).toBe(tokens);
  });

  it('with caching: false, ignores cache_control and bills every token as input', async () => {
    const plain = await startExtra({ caching: false });
    plain.onRequest(() => ({ content: [{ type: 'text', text: 'ok' }] }));
    const c = client({}, plain);
    const request = { model: MODEL, max_tokens: 10, system: [cached(BIG_SYSTEM)], messages: [{ role: 'user' as const, content: 'go' }] };
    await c.messages.create(request);
    expect((await c.messages.create(request)).usage).toMatchObject({
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
      input_tokens: textTokens(BIG_SYSTEM) + textTokens('go'),
    });
  });

  it('does not cache a prefix shorter than the minimum cacheable length', async () => {
    fake.script({ content: [{ type: 'text', text: 'a' }] }, { content: [{ type: 'text', text: 'b' }] });
    const c = client();
    const request = {
      model: MODEL,
      max_tokens: 100,
      system: [cached('Short system prompt.')],
      messages: [{ role: 'user' as const, content: 'hi' }],
    };
    await c.messages.create(request);
    const again = await c.messages.create(request);
    expect(again.usage).toMatchObject({
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
      input_tokens: textTokens('Short system prompt.') + textTokens('hi'),
    });
  });

  it('with a moving breakpoint, reads the previous turn and writes only the new blocks', async () => {
    fake.script(
      { content: [{ type: 'tool_use', name: 'bash', input: { command: 'ls' } }] },
      { content: [{ type: 'text', text: 'done' }] },
    );
    const c = client();
    const toolTokens = AGENT_TOOLS.reduce((sum, t) => sum + estimateTokens(t), 0);
    const systemTokens = textTokens(BIG_SYSTEM);
    const task = 'Fix the parser.';

    const first = await c.messages
      .stream({
        model: MODEL,
        max_tokens: 1000,
        tools: AGENT_TOOLS,
        system: [cached(BIG_SYSTEM)],
        messages: [{ role: 'user', content: [cached(task)] }],
      })
      .finalMessage();
    expect(first.usage).toMatchObject({
      cache_read_input_tokens: 0,
      cache_creation_input_tokens: toolTokens + systemTokens + textTokens(task),
      input_tokens: 0,
    });

    const toolUse = first.content[0]!;
    const result = { type: 'tool_result' as const, tool_use_id: 'toolu_fake_1', content: 'parser.ts\nparser.test.ts' };
    const second = await c.messages
      .stream({
        model: MODEL,
        max_tokens: 1000,
        tools: AGENT_TOOLS,
        system: [cached(BIG_SYSTEM)],
        messages: [
          { role: 'user', content: [{ type: 'text', text: task }] }, // breakpoint moved away from here
          { role: 'assistant', content: [toolUse] },
          { role: 'user', content: [{ ...result, cache_control: { type: 'ephemeral' } }] },
        ],
      })
      .finalMessage();
    const newTokens = estimateTokens(toolUse) + estimateTokens(result);
    expect(second.usage).toMatchObject({
      cache_read_input_tokens: toolTokens + systemTokens + textTokens(task),
      cache_creation_input_tokens: newTokens,
      input_tokens: 0,
    });
  });

  it(`finds an earlier cached prefix only within ${CACHE_LOOKBACK_BLOCKS} blocks of a breakpoint`, async () => {
    fake.onRequest(() => ({ content: [{ type: 'text', text: 'ok' }] }));
    const c = client();
    const systemTokens = textTokens(BIG_SYSTEM);
    const manyBlocks = Array.from({ length: CACHE_LOOKBACK_BLOCKS + 5 }, (_, i) => ({ type: 'text' as const, text: `note ${i}` }));
    const blocksTokens = manyBlocks.reduce((sum, b) => sum + estimateTokens(b), 0);
    await c.messages.create({ model: MODEL, max_tokens: 10, system: [cached(BIG_SYSTEM)], messages: [{ role: 'user', content: 'hi' }] });

    const farBreakpoint = [...manyBlocks.slice(0, -1), { ...manyBlocks.at(-1)!, cache_control: { type: 'ephemeral' as const } }];
    const far = await c.messages.create({
      model: MODEL,
      max_tokens: 10,
      system: BIG_SYSTEM,
      messages: [{ role: 'user', content: farBreakpoint }],
    });
    expect(far.usage).toMatchObject({ cache_read_input_tokens: 0, cache_creation_input_tokens: systemTokens + blocksTokens });

    const nearBreakpoint = [{ ...manyBlocks[0]!, cache_control: { type: 'ephemeral' as const } }, { type: 'text' as const, text: 'other' }];
    const near = await c.messages.create({
      model: MODEL,
      max_tokens: 10,
      system: BIG_SYSTEM,
      messages: [{ role: 'user', content: nearBreakpoint }],
    });
    expect(near.usage).toMatchObject({
      cache_read_input_tokens: systemTokens,
      cache_creation_input_tokens: estimateTokens(manyBlocks[0]),
      input_tokens: textTokens('other'),
    });
  });

  it('expires entries after their TTL unless a read refreshed them (injected clock)', async () => {
    let clock = 1_700_000_000_000;
    const timed = await startExtra({ now: () => clock });
    timed.onRequest(() => ({ content: [{ type: 'text', text: 'ok' }] }));
    const c = client({}, timed);
    const ask = async (ttl?: '5m' | '1h'): Promise<Anthropic.Usage> => {
      const system = [cached(BIG_SYSTEM, ttl)];
      return (await c.messages.create({ model: MODEL, max_tokens: 10, system, messages: [{ role: 'user', content: 'go' }] })).usage;
    };
    const systemTokens = textTokens(BIG_SYSTEM);

    expect((await ask()).cache_creation_input_tokens).toBe(systemTokens);
    clock += CACHE_TTL_MS['5m'] - 1_000;
    expect((await ask()).cache_read_input_tokens).toBe(systemTokens); // a read refreshes the lifetime
    clock += CACHE_TTL_MS['5m'] - 1_000;
    expect((await ask()).cache_read_input_tokens).toBe(systemTokens);
    clock += CACHE_TTL_MS['5m'];
    const expired = await ask();
    expect(expired).toMatchObject({ cache_read_input_tokens: 0, cache_creation_input_tokens: systemTokens });

    // An hour later the 5m entry is long gone; a 1h breakpoint writes one that outlives 30 minutes.
    clock += CACHE_TTL_MS['1h'];
    const longLived = await ask('1h');
    expect(longLived.cache_creation).toEqual({ ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: systemTokens });
    clock += 30 * 60_000;
    expect((await ask('1h')).cache_read_input_tokens).toBe(systemTokens);
  });

  it('keys the cache by model', async () => {
    fake.onRequest(() => ({ content: [{ type: 'text', text: 'ok' }] }));
    const c = client();
    const ask = (model: string): Promise<Anthropic.Message> =>
      c.messages.create({ model, max_tokens: 10, system: [cached(BIG_SYSTEM)], messages: [{ role: 'user', content: 'go' }] });
    await ask(MODEL);
    expect((await ask('claude-opus-4-6')).usage.cache_read_input_tokens).toBe(0);
    expect((await ask(MODEL)).usage.cache_read_input_tokens).toBe(textTokens(BIG_SYSTEM));
  });
});

describe('faults', () => {
  const create = (c: Anthropic): Promise<Anthropic.Message> =>
    c.messages.create({ model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'x' }] });

  it('429: the SDK honours retry-after-ms and retries; both attempts are recorded', async () => {
    fake.failNext({ kind: 'rate-limit' });
    fake.script({ content: [{ type: 'text', text: 'after the limit' }] });
    const msg = await create(client());
    expect(plain(msg.content)).toEqual([{ type: 'text', text: 'after the limit' }]);
    expect(fake.requests.map((r) => [r.outcome, r.status])).toEqual([
      ['error', 429],
      ['ok', 200],
    ]);
  });

  it('failAt hits the k-th request its predicate accepts, before failNext, once', async () => {
    const ask = (text: string) => client({ maxRetries: 0 }).messages.create({ model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: text }] });
    fake.onRequest(() => ({ content: [{ type: 'text', text: 'ok' }] }));
    fake.failAt({ match: (r) => JSON.stringify(r.body).includes('target'), occurrence: 2 }, { kind: 'server-error', status: 503 });
    await ask('target one');
    await ask('other');
    await rejection(ask('target two'), InternalServerError);
    await ask('target three');
    expect(fake.requests.map((r) => r.status)).toEqual([200, 200, 503, 200]);
  });

  it('429 without retries left surfaces as RateLimitError with the headers and request id', async () => {
    fake.failNext({ kind: 'rate-limit', retryAfterMs: 1_500 });
    const err = await rejection(create(client({ maxRetries: 0 })), RateLimitError);
    expect(err.type).toBe('rate_limit_error');
    expect(err.headers.get('retry-after-ms')).toBe('1500');
    expect(err.headers.get('retry-after')).toBe('2');
    expect(err.requestID).toBe('req_fake_000001');
    expect(err.error).toMatchObject({ type: 'error', error: { type: 'rate_limit_error' }, request_id: 'req_fake_000001' });
  });

  it('529 overloaded is retried with the SDK default backoff', async () => {
    fake.failNext({ kind: 'overloaded' });
    fake.script({ content: [{ type: 'text', text: 'ok' }] });
    await create(client());
    expect(fake.requests.map((r) => r.status)).toEqual([529, 200]);
    fake.failNext({ kind: 'overloaded' });
    const err = await rejection(create(client({ maxRetries: 0 })), OverloadedError);
    expect(err).toMatchObject({ status: 529, type: 'overloaded_error' });
  });

  it('500 is retried up to maxRetries; the scripted reply waits for the request that succeeds', async () => {
    fake.failNext({ kind: 'server-error', retryAfterMs: 10 }, 2);
    fake.script({ content: [{ type: 'text', text: 'third time lucky' }] });
    const msg = await create(client());
    expect(plain(msg.content)).toEqual([{ type: 'text', text: 'third time lucky' }]);
    expect(fake.requests.map((r) => r.status)).toEqual([500, 500, 200]);

    fake.failNext({ kind: 'server-error', status: 503, retryAfterMs: 10 }, 3);
    const err = await rejection(create(client()), InternalServerError);
    expect(err.status).toBe(503);
    expect(fake.requests).toHaveLength(6);
  });

  it('an { kind: "error" } fault answers the given status and type', async () => {
    const message = 'prompt is too long: 210000 tokens > 200000 maximum';
    fake.failNext({ kind: 'error', status: 400, type: 'invalid_request_error', message });
    const err = await rejection(create(client()), BadRequestError);
    expect(err).toMatchObject({ type: 'invalid_request_error', apiMessage: message });
    expect(fake.requests).toHaveLength(1);
  });

  it('reset: APIConnectionError once retries are exhausted, success if a retry is left', async () => {
    fake.failNext({ kind: 'reset' });
    const err = await rejection(create(client({ maxRetries: 0 })), APIConnectionError);
    expect(err).not.toBeInstanceOf(APIConnectionTimeoutError);
    expect(fake.requests[0]!.outcome).toBe('reset');

    fake.failNext({ kind: 'reset' });
    fake.script({ content: [{ type: 'text', text: 'reconnected' }] });
    const msg = await create(client({ maxRetries: 1 }));
    expect(plain(msg.content)).toEqual([{ type: 'text', text: 'reconnected' }]);
    expect(fake.requests.map((r) => r.outcome)).toEqual(['reset', 'reset', 'ok']);
  });

  it('stall: the SDK times out with APIConnectionTimeoutError', async () => {
    fake.failNext({ kind: 'stall' });
    const err = await rejection(create(client({ maxRetries: 0, timeout: 200 })), APIConnectionTimeoutError);
    expect(err.message).toBe('Request timed out.');
    expect(fake.requests[0]!.outcome).toBe('stall');
  });

  it('cut-stream: finalMessage rejects, no complete tool_use is delivered, and the SDK does not retry', async () => {
    const input = { command: 'git commit -am "a fairly long message so the input is cut mid-string"' };
    fake.script({ content: [{ type: 'text', text: 'Committing.' }, { type: 'tool_use', name: 'bash', input }] });
    fake.failNext({ kind: 'cut-stream' });
    const c = client();
    const request = {
      model: MODEL,
      max_tokens: 1000,
      tools: AGENT_TOOLS,
      system: [cached(BIG_SYSTEM)],
      messages: [{ role: 'user' as const, content: 'Commit the change.' }],
    };
    const stream = c.messages.stream(request);
    const completed: ContentBlock[] = [];
    const eventTypes: string[] = [];
    stream.on('contentBlock', (block) => completed.push(block));
    stream.on('streamEvent', (event) => eventTypes.push(event.type));
    // MessageStream wraps the body read failure (undici's TypeError "terminated") in a plain
    // AnthropicError: not an APIError, so nothing in the SDK retries it.
    const err = await rejection(stream.finalMessage(), AnthropicError);
    expect(err).not.toBeInstanceOf(APIError);
    expect(eventTypes).toContain('message_start');
    expect(eventTypes).not.toContain('message_stop');
    expect(completed.map((b) => b.type)).toEqual(['text']);
    expect(fake.requests).toHaveLength(1);
    expect(fake.requests[0]!.outcome).toBe('cut');

    // The prompt was processed (and billed), so the caller's own retry reads the cache and
    // gets the reply the cut stream was sending, in full.
    const systemTokens = textTokens(BIG_SYSTEM);
    expect(fake.requests[0]!.usage?.cache_creation_input_tokens).toBe(
      AGENT_TOOLS.reduce((sum, t) => sum + estimateTokens(t), 0) + systemTokens,
    );
    const retried = await c.messages.stream(request).finalMessage();
    expect(plain(retried.content)[1]).toMatchObject({ type: 'tool_use', name: 'bash', input });
    expect(retried.usage.cache_read_input_tokens).toBe(fake.requests[0]!.usage?.cache_creation_input_tokens);
  });

  it('stall-stream: the stream starts, then goes silent until the caller aborts', async () => {
    fake.script({ content: [{ type: 'tool_use', name: 'bash', input: { command: 'npm test' } }] });
    fake.failNext({ kind: 'stall-stream' });
    // The SDK timeout ends at the response headers, so it does not end this stream.
    const stream = client({ timeout: 100 }).messages.stream({
      model: MODEL,
      max_tokens: 100,
      tools: AGENT_TOOLS,
      messages: [{ role: 'user', content: 'test' }],
    });
    const eventTypes: string[] = [];
    stream.on('streamEvent', (event) => eventTypes.push(event.type));
    const final = stream.finalMessage();
    final.catch(() => undefined); // asserted below, after the abort
    await fake.waitFor(() => eventTypes.includes('content_block_delta'), { what: 'a partial tool_use on the stream' });
    expect(fake.requests[0]).toMatchObject({ outcome: 'stall', status: 200 });
    stream.abort();
    await rejection(final, APIUserAbortError);
    expect(eventTypes).not.toContain('content_block_stop');
    expect(fake.requests).toHaveLength(1);
  });

  it('cut-stream on a non-streaming request is a reset', async () => {
    fake.failNext({ kind: 'cut-stream' });
    await rejection(create(client({ maxRetries: 0 })), APIConnectionError);
    expect(fake.requests[0]!.outcome).toBe('reset');
  });
});

describe('waitFor', () => {
  it('resolves when a request arrives and reports recent requests on timeout', async () => {
    fake.failNext({ kind: 'stall' });
    const controller = new AbortController();
    const pending = client({ maxRetries: 0 })
      .messages.create({ model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'x' }] }, { signal: controller.signal })
      .catch((e: unknown) => e);
    const arrived = await fake.waitFor(() => fake.requests[0], { what: 'first request' });
    expect(arrived.outcome).toBe('stall');
    const err = await rejection(
      fake.waitFor(() => fake.requests.length > 1, { timeoutMs: 100, what: 'a second request' }),
      Error,
    );
    expect(err.message).toContain('a second request');
    expect(err.message).toContain(`#1 /v1/messages model=${MODEL} sync messages=1 -> stall`);
    controller.abort();
    expect(await pending).toBeInstanceOf(APIError);
  });
});

describe('message batches', () => {
  const ask = (content: string, extra: Partial<Anthropic.MessageCreateParamsNonStreaming> = {}): Anthropic.MessageCreateParamsNonStreaming => ({
    model: MODEL,
    max_tokens: 100,
    messages: [{ role: 'user', content }],
    ...extra,
  });

  /** Every line of a batch's results file, by custom_id. */
  async function resultsOf(c: Anthropic, id: string): Promise<Map<string, Anthropic.Messages.MessageBatchResult>> {
    const results = new Map<string, Anthropic.Messages.MessageBatchResult>();
    for await (const line of await c.messages.batches.results(id)) results.set(line.custom_id, line.result);
    return results;
  }

  it('holds a batch in_progress until endBatch, then answers each request from the script, in order', async () => {
    const c = client();
    const created = await c.messages.batches.create({
      requests: [
        { custom_id: 'triage-1', params: ask('Triage issue 1.') },
        { custom_id: 'review-2', params: ask('Review PR 2.', { system: 'You review.' }) },
      ],
    });
    expect(created).toMatchObject({
      id: 'msgbatch_fake_1',
      type: 'message_batch',
      processing_status: 'in_progress',
      request_counts: { processing: 2, succeeded: 0, errored: 0, canceled: 0, expired: 0 },
      results_url: null,
      ended_at: null,
    });
    expect(Date.parse(created.expires_at) - Date.parse(created.created_at)).toBe(24 * 60 * 60_000);
    // Each request is recorded like a call, so a test finds its prompt; nothing is answered yet.
    expect(fake.requests.map((r) => [r.batch, r.batchId, r.customId, r.path, r.usage])).toEqual([
      [true, created.id, 'triage-1', '/v1/messages/batches', undefined],
      [true, created.id, 'review-2', '/v1/messages/batches', undefined],
    ]);
    expect(fake.requests[1]!.body).toEqual(ask('Review PR 2.', { system: 'You review.' }));
    expect(fake.batchCalls.map((r) => [r.path, r.status])).toEqual([['/v1/messages/batches', 200]]);

    // Still pending when polled again, e.g. by a restarted process.
    expect((await client().messages.batches.retrieve(created.id)).processing_status).toBe('in_progress');
    // The SDK refuses to fetch results before there is a results_url.
    await rejection(c.messages.batches.results(created.id), AnthropicError);

    fake.script({ content: [{ type: 'text', text: 'bug, small' }] }, { content: [{ type: 'text', text: 'approve' }], outputTokens: 7 });
    expect(fake.endBatch().map((b) => b.id)).toEqual([created.id]);
    const ended = await c.messages.batches.retrieve(created.id);
    expect(ended).toMatchObject({
      processing_status: 'ended',
      request_counts: { processing: 0, succeeded: 2, errored: 0, canceled: 0, expired: 0 },
      results_url: `${fake.baseUrl}/v1/messages/batches/${created.id}/results`,
    });
    expect(ended.ended_at).not.toBeNull();

    const results = await resultsOf(c, created.id);
    const triage = results.get('triage-1');
    const review = results.get('review-2');
    if (triage?.type !== 'succeeded' || review?.type !== 'succeeded') throw new Error(`not succeeded: ${JSON.stringify([...results])}`);
    expect(plain(triage.message.content)).toEqual([{ type: 'text', text: 'bug, small' }]);
    expect(plain(review.message.content)).toEqual([{ type: 'text', text: 'approve' }]);
    expect(review.message.usage).toMatchObject({
      input_tokens: estimateTokens({ type: 'text', text: 'You review.' }) + textTokens('Review PR 2.'),
      output_tokens: 7,
      service_tier: 'batch',
    });
    expect(fake.requests.map((r) => [r.batchResult, r.outcome, r.usage?.output_tokens])).toEqual([
      ['succeeded', 'ok', estimateTokens([{ type: 'text', text: 'bug, small' }])],
      ['succeeded', 'ok', 7],
    ]);
    expect(fake.totalUsage().output_tokens).toBe(fake.requests[0]!.usage!.output_tokens + 7);
    const download = fake.batchCalls.at(-1)!;
    expect(download).toMatchObject({ path: `/v1/messages/batches/${created.id}/results`, stream: true, status: 200 });
    expect(download.headers.accept).toBe('application/binary');
  });

  it('lists results in an order other than the requests, so clients must match custom_id', async () => {
    fake.onRequest((req) => ({ content: [{ type: 'text', text: `answer to ${req.customId}` }] }));
    const c = client();
    const { id } = await c.messages.batches.create({
      requests: ['a', 'b', 'c'].map((customId) => ({ custom_id: customId, params: ask(`question ${customId}`) })),
    });
    fake.endBatch(id);
    const order: string[] = [];
    for await (const line of await c.messages.batches.results(id)) {
      order.push(line.custom_id);
      if (line.result.type !== 'succeeded') throw new Error(line.result.type);
      expect(plain(line.result.message.content)).toEqual([{ type: 'text', text: `answer to ${line.custom_id}` }]);
    }
    expect(order).toEqual(['c', 'b', 'a']);
  });

  it('scripts errored, expired and canceled requests; bad params error only when processed; none is billed', async () => {
    const c = client();
    fake.failBatchRequest('boom', 'errored', { type: 'overloaded_error', message: 'Overloaded' });
    fake.failBatchRequest('late', 'expired');
    fake.failBatchRequest('dropped', 'canceled');
    fake.failBatchRequest('plain', 'errored');
    const { id } = await c.messages.batches.create({
      requests: [
        { custom_id: 'boom', params: ask('a') },
        { custom_id: 'late', params: ask('b') },
        { custom_id: 'dropped', params: ask('c') },
        { custom_id: 'plain', params: ask('d') },
        { custom_id: 'bad-params', params: { ...ask('e'), max_tokens: 0 } },
        { custom_id: 'unscripted', params: ask('f') },
      ],
    });
    fake.endBatch();
    const results = await resultsOf(c, id);
    expect(Object.fromEntries(results)).toEqual({
      boom: { type: 'errored', error: { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' }, request_id: null } },
      late: { type: 'expired' },
      dropped: { type: 'canceled' },
      plain: { type: 'errored', error: { type: 'error', error: { type: 'api_error', message: 'Internal server error' }, request_id: null } },
      'bad-params': {
        type: 'errored',
        error: { type: 'error', error: { type: 'invalid_request_error', message: 'max_tokens: Input should be greater than or equal to 1' }, request_id: null },
      },
      unscripted: {
        type: 'errored',
        error: { type: 'error', error: { type: 'api_error', message: 'fake: no scripted reply' }, request_id: null },
      },
    });
    expect((await c.messages.batches.retrieve(id)).request_counts).toEqual({ processing: 0, succeeded: 0, errored: 4, canceled: 1, expired: 1 });
    expect(fake.requests.every((r) => r.usage === undefined)).toBe(true);
    expect(fake.requests.map((r) => r.status)).toEqual([undefined, undefined, undefined, undefined, 400, 500]);

    // A scripted failure is used once: the same custom_id in the next batch is answered.
    fake.script({ content: [{ type: 'text', text: 'fine now' }] });
    const again = await c.messages.batches.create({ requests: [{ custom_id: 'boom', params: ask('a') }] });
    fake.endBatch(again.id);
    expect((await resultsOf(c, again.id)).get('boom')?.type).toBe('succeeded');
  });

  it('processes batch requests in order through the prompt cache', async () => {
    const params = ask('go', { system: [cached(BIG_SYSTEM)] });
    fake.onRequest(() => ({ content: [{ type: 'text', text: 'ok' }] }));
    await client().messages.batches.create({ requests: [{ custom_id: 'first', params }, { custom_id: 'second', params }] });
    fake.endBatch();
    expect(fake.requests.map((r) => [r.usage?.cache_creation_input_tokens, r.usage?.cache_read_input_tokens])).toEqual([
      [textTokens(BIG_SYSTEM), 0],
      [0, textTokens(BIG_SYSTEM)],
    ]);
  });

  it('refuses a malformed batch with 400 and an unknown batch with 404, creating nothing', async () => {
    const c = client();
    const create = (requests: unknown): Promise<unknown> =>
      c.messages.batches.create({ requests } as Anthropic.Messages.BatchCreateParams);
    const dup = await rejection(create([{ custom_id: 'x', params: ask('a') }, { custom_id: 'x', params: ask('b') }]), BadRequestError);
    expect(dup.message).toContain("duplicate custom_id 'x'");
    await rejection(create([]), BadRequestError);
    const badId = await rejection(create([{ custom_id: 'has space', params: ask('a') }]), BadRequestError);
    expect(badId.message).toContain('requests.0.custom_id');
    await rejection(create([{ custom_id: 'no-params' }]), BadRequestError);
    expect(fake.batches).toHaveLength(0);
    expect(fake.requests).toHaveLength(0);

    const missing = await rejection(c.messages.batches.retrieve('msgbatch_nope'), NotFoundError);
    expect(missing.type).toBe('not_found_error');
    expect(() => fake.endBatch()).toThrow('no batch is in progress');
    expect(() => fake.endBatch('msgbatch_nope')).toThrow('no such batch');
  });

  it('cancel: the batch is canceling until it ends, then its requests are canceled', async () => {
    const c = client();
    const { id } = await c.messages.batches.create({ requests: [{ custom_id: 'one', params: ask('a') }] });
    const canceling = await c.messages.batches.cancel(id);
    expect(canceling).toMatchObject({ processing_status: 'canceling', request_counts: { processing: 1 }, results_url: null });
    expect(canceling.cancel_initiated_at).not.toBeNull();
    fake.endBatch(id);
    expect(() => fake.endBatch(id)).toThrow('already ended');
    expect((await c.messages.batches.retrieve(id)).request_counts).toMatchObject({ canceled: 1, processing: 0 });
    expect(Object.fromEntries(await resultsOf(c, id))).toEqual({ one: { type: 'canceled' } });
  });

  it('autoEndBatches ends a batch at creation', async () => {
    const auto = await startExtra({ autoEndBatches: true });
    auto.script({ content: [{ type: 'text', text: 'at once' }] });
    const c = client({}, auto);
    const created = await c.messages.batches.create({ requests: [{ custom_id: 'now', params: ask('a') }] });
    expect(created).toMatchObject({ processing_status: 'ended', request_counts: { succeeded: 1 } });
    expect(created.results_url).toBe(`${auto.baseUrl}/v1/messages/batches/${created.id}/results`);
    expect((await resultsOf(c, created.id)).get('now')?.type).toBe('succeeded');
  });

  it('applies failNext to batch calls: a 529 on retrieve is retried; a fault aimed at messages is left for them', async () => {
    const c = client();
    const { id } = await c.messages.batches.create({ requests: [{ custom_id: 'one', params: ask('a') }] });
    fake.failNext({ kind: 'rate-limit' }, 1, 'messages');
    fake.failNext({ kind: 'overloaded', retryAfterMs: 5 }, 1, 'batches');
    fake.failNext({ kind: 'server-error', retryAfterMs: 5 });
    expect((await c.messages.batches.retrieve(id)).processing_status).toBe('in_progress');
    expect(fake.batchCalls.map((r) => r.status)).toEqual([200, 529, 500, 200]);
    fake.script({ content: [{ type: 'text', text: 'after the limit' }] });
    await c.messages.create(ask('x'));
    expect(fake.requests.filter((r) => !r.batch).map((r) => r.status)).toEqual([429, 200]);

    // A create that fails creates nothing.
    fake.failNext({ kind: 'reset' }, 1, 'batches');
    await rejection(client({ maxRetries: 0 }).messages.batches.create({ requests: [{ custom_id: 'two', params: ask('b') }] }), APIConnectionError);
    expect(fake.batches).toHaveLength(1);
  });

  it('lists batches newest first, paged by limit and after_id (the SDK follows has_more) or before_id', async () => {
    const c = client();
    const ids: string[] = [];
    for (const n of [1, 2, 3, 4, 5]) ids.push((await c.messages.batches.create({ requests: [{ custom_id: `r${n}`, params: ask(String(n)) }] })).id);
    const newestFirst = [...ids].reverse();
    const first = await c.messages.batches.list({ limit: 2 });
    expect(first.data.map((b) => b.id)).toEqual(newestFirst.slice(0, 2));
    expect(first).toMatchObject({ has_more: true, first_id: newestFirst[0], last_id: newestFirst[1] });
    const calls = fake.batchCalls.length;
    const all: string[] = [];
    for await (const b of c.messages.batches.list({ limit: 2 })) all.push(b.id);
    expect(all).toEqual(newestFirst);
    // Three pages of 2, 2 and 1, each after the last id of the one before.
    const pages = fake.batchCalls.slice(calls);
    expect(pages.map((r) => [r.query?.get('limit'), r.query?.get('after_id') ?? null])).toEqual([
      ['2', null],
      ['2', newestFirst[1]],
      ['2', newestFirst[3]],
    ]);
    const last = await c.messages.batches.list({ limit: 2, after_id: newestFirst[3] });
    expect(last).toMatchObject({ has_more: false, first_id: newestFirst[4], last_id: newestFirst[4] });
    const newer = await c.messages.batches.list({ limit: 2, before_id: newestFirst[3] });
    expect(newer.data.map((b) => b.id)).toEqual(newestFirst.slice(1, 3));
    expect(newer.has_more).toBe(true);
    // Defaults to 20; refuses what the API refuses.
    expect((await c.messages.batches.list()).data).toHaveLength(5);
    await rejection(c.messages.batches.list({ limit: 0 }), BadRequestError);
    await rejection(c.messages.batches.list({ after_id: 'msgbatch_nope' }), BadRequestError);
  });

  it('afterCreate faults create the batch, then lose its answer: a reset, a 5xx, a stall', async () => {
    const once = client({ maxRetries: 0, timeout: 300 });
    fake.failNext({ kind: 'reset', afterCreate: true }, 1, 'batches');
    await rejection(once.messages.batches.create({ requests: [{ custom_id: 'a', params: ask('a') }] }), APIConnectionError);
    fake.failNext({ kind: 'server-error', status: 503, afterCreate: true }, 1, 'batches');
    const fiveHundred = await rejection(once.messages.batches.create({ requests: [{ custom_id: 'b', params: ask('b') }] }), APIError);
    expect(fiveHundred.status).toBe(503);
    fake.failNext({ kind: 'stall', afterCreate: true }, 1, 'batches');
    await rejection(once.messages.batches.create({ requests: [{ custom_id: 'c', params: ask('c') }] }), APIConnectionError);
    expect(fake.batches.map((b) => [b.status, b.requests.map((r) => r.customId)])).toEqual([
      ['in_progress', ['a']],
      ['in_progress', ['b']],
      ['in_progress', ['c']],
    ]);
    expect(fake.batchCalls.map((r) => r.outcome)).toEqual(['reset', 'error', 'stall']);
    // On any other batch call, afterCreate is a plain fault.
    fake.failNext({ kind: 'reset', afterCreate: true }, 1, 'batches');
    await rejection(once.messages.batches.retrieve(fake.batches[0]!.id), APIConnectionError);
  });

  it('cut-stream on the results download breaks the JSONL midway, which the SDK does not retry', async () => {
    const c = client();
    fake.onRequest(() => ({ content: [{ type: 'text', text: 'a reply long enough to be cut in the middle of its line' }] }));
    const { id } = await c.messages.batches.create({
      requests: ['a', 'b'].map((customId) => ({ custom_id: customId, params: ask(customId) })),
    });
    fake.endBatch(id);
    // results() retrieves the batch first; a stream fault passes that call by and waits for the download.
    fake.failNext({ kind: 'cut-stream' }, 1, 'batches');
    const seen: string[] = [];
    const read = async (): Promise<void> => {
      for await (const line of await c.messages.batches.results(id)) seen.push(line.custom_id);
    };
    await expect(read()).rejects.toThrow();
    expect(seen).toEqual(['b']);
    const download = fake.batchCalls.filter((r) => r.path.endsWith('/results'));
    expect(download.map((r) => [r.status, r.outcome])).toEqual([[200, 'cut']]);
    expect(fake.batchCalls.map((r) => r.outcome)).toEqual(['ok', 'ok', 'cut']);
  });

  it('names batch requests and calls when waitFor times out', async () => {
    await client().messages.batches.create({ requests: [{ custom_id: 'one', params: ask('a') }] });
    const err = await rejection(fake.waitFor(() => false, { timeoutMs: 50, what: 'never' }), Error);
    expect(err.message).toContain('#1 /v1/messages/batches -> ok 200');
    expect(err.message).toContain(`#2 /v1/messages/batches batch=msgbatch_fake_1/one model=${MODEL} sync messages=1 -> pending`);
  });
});
