import type { Database } from 'better-sqlite3';
import { ITEM_STATES } from '../domain/item-state.js';

const stateList = ITEM_STATES.map((s) => `'${s}'`).join(', ');

/**
 * Numbered schema migrations; index + 1 is the `user_version` after it runs. Append only:
 * a released migration is never edited, a change is a new entry.
 */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    repo TEXT NOT NULL,
    title TEXT NOT NULL,
    request TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN (${stateList})),
    state_reason TEXT,
    chat_id INTEGER NOT NULL,
    created_by INTEGER NOT NULL,
    source_update_id INTEGER UNIQUE,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );
  CREATE INDEX items_state ON items (state);

  CREATE TABLE item_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id INTEGER NOT NULL REFERENCES items (id),
    from_state TEXT,
    to_state TEXT NOT NULL,
    reason TEXT,
    at INTEGER NOT NULL
  );
  CREATE INDEX item_events_item ON item_events (item_id);

  CREATE TABLE inbox (
    update_id INTEGER PRIMARY KEY,
    received_at INTEGER NOT NULL
  );

  CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_id INTEGER NOT NULL,
    text TEXT NOT NULL,
    reply_markup TEXT,
    item_id INTEGER REFERENCES items (id),
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    telegram_message_id INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    sent_at INTEGER
  );
  CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
  `,
  `
  ALTER TABLE items ADD COLUMN branch TEXT;
  ALTER TABLE items ADD COLUMN pr_number INTEGER;
  ALTER TABLE items ADD COLUMN pr_url TEXT;
  ALTER TABLE items ADD COLUMN head_sha TEXT;
  ALTER TABLE items ADD COLUMN progress_outbox_id INTEGER REFERENCES outbox (id);

  -- Every model call, priced when it was made: the source of truth for spend.
  CREATE TABLE llm_calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id INTEGER REFERENCES items (id),
    stage TEXT NOT NULL,
    model TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    cache_write_5m_tokens INTEGER NOT NULL,
    cache_write_1h_tokens INTEGER NOT NULL,
    cache_read_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    batch INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL,
    request_id TEXT,
    at INTEGER NOT NULL
  );
  CREATE INDEX llm_calls_item ON llm_calls (item_id, stage);
  CREATE INDEX llm_calls_at ON llm_calls (at);

  -- One agent loop (a stage's run for an item) and its transcript, message by message, so a
  -- run resumes after a crash from the last completed turn instead of paying for it again.
  CREATE TABLE agent_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id INTEGER NOT NULL REFERENCES items (id),
    stage TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'done', 'stopped', 'failed')),
    outcome TEXT,
    turns INTEGER NOT NULL DEFAULT 0,
    elapsed_ms INTEGER NOT NULL DEFAULT 0,
    started_at INTEGER NOT NULL,
    ended_at INTEGER
  );
  CREATE INDEX agent_runs_item ON agent_runs (item_id, stage, status);

  CREATE TABLE agent_messages (
    run_id INTEGER NOT NULL REFERENCES agent_runs (id),
    seq INTEGER NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
  );
  `,
  `
  -- Items proposed from a review finding point at the item whose PR it was found in.
  ALTER TABLE items ADD COLUMN parent_item_id INTEGER REFERENCES items (id);
  -- The compact triage summary for the review card (JSON), and the sticky PR comment's id.
  ALTER TABLE items ADD COLUMN review_summary TEXT;
  ALTER TABLE items ADD COLUMN review_comment_id INTEGER;

  -- One review round of an item: which head it reviewed, from which base, and how far it got.
  CREATE TABLE review_rounds (
    item_id INTEGER NOT NULL REFERENCES items (id),
    round INTEGER NOT NULL,
    base_sha TEXT NOT NULL,
    head_sha TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('reviewing', 'triaged', 'fixed', 'done')),
    angles_done TEXT NOT NULL DEFAULT '[]',
    fix_sha TEXT,
    PRIMARY KEY (item_id, round)
  );

  -- The finding ledger: every finding of every reviewer, and what triage and fix made of it.
  CREATE TABLE findings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id INTEGER NOT NULL REFERENCES items (id),
    pr_number INTEGER,
    head_sha TEXT NOT NULL,
    round INTEGER NOT NULL,
    angle TEXT NOT NULL,
    file TEXT NOT NULL,
    line_start INTEGER,
    line_end INTEGER,
    severity TEXT NOT NULL CHECK (severity IN ('critical', 'high', 'medium', 'low')),
    title TEXT NOT NULL,
    evidence TEXT NOT NULL,
    failure TEXT NOT NULL,
    suggested_fix TEXT NOT NULL,
    confidence REAL NOT NULL,
    verdict TEXT CHECK (verdict IN ('fix_now', 'backlog', 'ignore')),
    verdict_reason TEXT,
    merged_into INTEGER REFERENCES findings (id),
    status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'fixed', 'backlogged', 'ignored', 'merged')),
    fixed_sha TEXT,
    backlog_item_id INTEGER REFERENCES items (id),
    created_at INTEGER NOT NULL
  );
  CREATE INDEX findings_item ON findings (item_id, round);
  `,
  `
  -- Deferred items wake at wake_at; a merged item keeps the merge commit.
  ALTER TABLE items ADD COLUMN wake_at INTEGER;
  ALTER TABLE items ADD COLUMN merge_commit_sha TEXT;
  -- An outbox row with edit_of edits that (earlier) message instead of sending a new one.
  ALTER TABLE outbox ADD COLUMN edit_of INTEGER REFERENCES outbox (id);

  -- Drift checkpoints: every N merges of a repo, a look at where the code is heading.
  CREATE TABLE checkpoints (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    repo TEXT NOT NULL,
    merges_total INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'done', 'failed')),
    report TEXT,
    created_at INTEGER NOT NULL
  );
  CREATE INDEX checkpoints_repo ON checkpoints (repo, id);

  -- Cards: a message with decision buttons (a PR's review card, a drift checkpoint).
  CREATE TABLE cards (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('review', 'checkpoint')),
    item_id INTEGER REFERENCES items (id),
    checkpoint_id INTEGER REFERENCES checkpoints (id),
    repo TEXT NOT NULL,
    chat_id INTEGER NOT NULL,
    head_sha TEXT,
    status TEXT NOT NULL CHECK (status IN ('held', 'open', 'deciding', 'decided', 'superseded')),
    deliver_at INTEGER,
    outbox_id INTEGER REFERENCES outbox (id),
    html TEXT,
    decision TEXT,
    decided_by INTEGER,
    decided_by_name TEXT,
    outcome TEXT,
    created_at INTEGER NOT NULL,
    shown_at INTEGER,
    decided_at INTEGER,
    -- A decided card's follow-ups (branch deleted, PR closed, worktree removed) are done, and
    -- its outcome is on the phone: a crash before either is finished on the next start.
    followed_up_at INTEGER,
    presented_at INTEGER
  );
  CREATE INDEX cards_item ON cards (item_id);
  CREATE INDEX cards_status ON cards (status);

  -- The opaque callback_data of each button, bound to its action, its card (if any) and the
  -- message that carries it. One-shot buttons (re-queue, delete a lesson) record their use.
  CREATE TABLE buttons (
    token TEXT PRIMARY KEY,
    card_id INTEGER REFERENCES cards (id),
    action TEXT NOT NULL,
    arg TEXT,
    outbox_id INTEGER REFERENCES outbox (id),
    used_at INTEGER
  );
  CREATE INDEX buttons_card ON buttons (card_id);

  -- A question the bot asked and whose answer is the user's next text message.
  CREATE TABLE awaiting_replies (
    chat_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('reject-reason')),
    card_id INTEGER NOT NULL REFERENCES cards (id),
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (chat_id, user_id)
  );

  -- What the human taught the bot by rejecting PRs; fed into later build and review prompts.
  CREATE TABLE lessons (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    repo TEXT NOT NULL,
    text TEXT NOT NULL,
    item_id INTEGER REFERENCES items (id),
    created_by INTEGER,
    created_at INTEGER NOT NULL,
    deleted_at INTEGER
  );
  CREATE INDEX lessons_repo ON lessons (repo);

  -- Repos whose building the human paused (from a drift checkpoint).
  CREATE TABLE paused_repos (
    repo TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    paused_at INTEGER NOT NULL
  );
  `,
  `
  -- Durable dispatch: the worker holding an item's lease, until when, and a fencing token that
  -- grows with every claim (a stale worker's late write carries an old one and is refused).
  ALTER TABLE items ADD COLUMN lease_owner TEXT;
  ALTER TABLE items ADD COLUMN lease_expires_at INTEGER;
  ALTER TABLE items ADD COLUMN lease_fence INTEGER NOT NULL DEFAULT 0;
  -- Failed attempts of the current stage, and the earliest time the item may run again
  -- (a retry's backoff, a budget's reset).
  ALTER TABLE items ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE items ADD COLUMN not_before INTEGER;
  -- Sizing at queue time: the planning model's report (JSON) and the estimated cost range.
  ALTER TABLE items ADD COLUMN size_report TEXT;
  ALTER TABLE items ADD COLUMN estimate_low_usd REAL;
  ALTER TABLE items ADD COLUMN estimate_high_usd REAL;

  -- One running nightshift per data directory: the holder renews its heartbeat.
  CREATE TABLE process_lock (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    owner TEXT NOT NULL,
    pid INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
  );

  -- Message Batches: submitted requests whose results the pipeline waits for.
  CREATE TABLE batches (
    id TEXT PRIMARY KEY,
    item_id INTEGER REFERENCES items (id),
    stage TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'ended', 'failed')),
    created_at INTEGER NOT NULL,
    ended_at INTEGER
  );
  CREATE TABLE batch_requests (
    batch_id TEXT NOT NULL REFERENCES batches (id),
    custom_id TEXT NOT NULL,
    request TEXT NOT NULL,
    result TEXT,
    PRIMARY KEY (batch_id, custom_id)
  );

  -- Process-wide switches that survive restarts (e.g. building paused by /pause).
  CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
  );
  `,
  `
  -- Batches as the review stage uses them: the step of the stage a batch is for (e.g.
  -- 'round-1-reviewers'), so a resumed stage finds its batch instead of submitting another.
  ALTER TABLE batches ADD COLUMN step TEXT NOT NULL DEFAULT '';
  -- Each request's worst case at the batch price: while its batch is pending, it is reserved
  -- against the stage, item, daily and monthly caps (also across restarts), until the results
  -- are recorded in the ledger in the same transaction that ends the batch.
  ALTER TABLE batch_requests ADD COLUMN worst_usd REAL NOT NULL DEFAULT 0;
  -- When the stage took the request's result, so a result is never used twice (a retry after
  -- a reply that could not be parsed makes a normal call instead).
  ALTER TABLE batch_requests ADD COLUMN used_at INTEGER;
  CREATE INDEX batches_item ON batches (item_id, step);
  CREATE INDEX batches_status ON batches (status);
  `,
  `
  -- Sizing at queue time (pipeline/sizer.ts): where a queued request's sizing stands. pending:
  -- to be sized (after a crash or a failed call too) · asked: the verdict is on the phone and
  -- waits for a tap or an answer · parked: sizing could not finish; the user decides · done.
  -- Null for items that are never sized (a review's proposals, items queued with sizing off).
  -- size_report (migration 5) holds the report as JSON; its "class" is what estimates group by.
  ALTER TABLE items ADD COLUMN sizing TEXT CHECK (sizing IN ('pending', 'asked', 'parked', 'done'));
  -- Failed sizing calls so far (rate limits and budget resets not counted).
  ALTER TABLE items ADD COLUMN sizing_attempts INTEGER NOT NULL DEFAULT 0;
  CREATE INDEX items_sizing ON items (sizing) WHERE sizing IS NOT NULL;

  -- A question may now be about an item (sizing's question before it sizes again) instead of a
  -- card, and one user may have one question of each kind waiting: a Reject's reason and a
  -- sizing question side by side.
  CREATE TABLE awaiting_replies_7 (
    chat_id INTEGER NOT NULL,
    user_id INTEGER NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('reject-reason', 'sizing-answer')),
    card_id INTEGER REFERENCES cards (id),
    item_id INTEGER REFERENCES items (id),
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (chat_id, user_id, kind),
    CHECK (CASE kind WHEN 'reject-reason' THEN card_id IS NOT NULL ELSE item_id IS NOT NULL END)
  );
  INSERT INTO awaiting_replies_7 (chat_id, user_id, kind, card_id, expires_at)
    SELECT chat_id, user_id, kind, card_id, expires_at FROM awaiting_replies;
  DROP TABLE awaiting_replies;
  ALTER TABLE awaiting_replies_7 RENAME TO awaiting_replies;
  `,
  `
  -- A batch about to be submitted, written before the create is sent (store/batches.ts): its
  -- requests' worst cases stay reserved against the caps until the batch is known (the API
  -- answered, or reconciliation found it) or known never to have been created. The nonce ends
  -- every custom_id sent, so reconciliation can tell this intent's batch from any other.
  CREATE TABLE batch_intents (
    nonce TEXT PRIMARY KEY,
    item_id INTEGER REFERENCES items (id),
    stage TEXT NOT NULL,
    step TEXT NOT NULL,
    -- JSON: [{customId, request, worstUsd}], the batch's requests as they are to be stored.
    requests TEXT NOT NULL,
    worst_usd REAL NOT NULL,
    created_at INTEGER NOT NULL
  );
  CREATE INDEX batch_intents_item ON batch_intents (item_id, step);
  -- The nonce the batch's custom ids were sent with (null for batches submitted before it).
  ALTER TABLE batches ADD COLUMN nonce TEXT;
  `,
  `
  -- When the send of a new message was last started (store/outbox.ts): set before the call to
  -- Telegram, cleared by its outcome. Still set at the next start means the process died with
  -- the call in flight, so Telegram may or may not have the message.
  ALTER TABLE outbox ADD COLUMN sending_at INTEGER;
  -- 1 when the message was sent again because of that: an earlier copy may be in the chat, so
  -- its buttons' taps come from a message id before the recorded one.
  ALTER TABLE outbox ADD COLUMN resent INTEGER NOT NULL DEFAULT 0;
  `,
];

/** Brings the schema up to date, each migration in its own transaction. */
export function migrate(db: Database): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new Error(
      `database schema version ${current} is newer than this nightshift (${MIGRATIONS.length}); upgrade nightshift or restore a backup`,
    );
  }
  for (let version = current; version < MIGRATIONS.length; version++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[version]!);
      db.pragma(`user_version = ${version + 1}`);
    })();
  }
}
