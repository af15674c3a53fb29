-- The whole D1 schema in one readable file: the result of applying every file in migrations/ in
-- order (a test compares the two, table by table and index by index). A schema change edits this file
-- AND adds the next migrations/NNNN_<name>.sql; migrations are what `npm run dev`, the tests and
-- `npm run db:migrate` apply. There are no triggers (a move between shards creates its own while it
-- runs, src/db/shard-move.ts), so the file can be split on ';' at the end of a line.
-- Times are integer milliseconds since the Unix epoch, always passed in from the Worker's clock.

-- A tenant. The secret is stored only as SHA-256 (hex) and compared in constant time.
-- settings: JSON of per-project limits; absent keys take the documented defaults (src/settings.ts).
-- public_token (public-token-<env>-<uuid>) is what the frontend SDKs present to /sdk/v1: not a secret,
-- stored as is, unique; NULL only for a project inserted by a Worker older than the column.
-- Every D1 database (shard) has this whole schema. The first one (binding DB, shard 0) is the
-- directory: its projects table holds every project, and `shard` says which database holds the
-- project's rows in every other table (shard N is the binding DB_N; src/db/shard.ts). Another shard
-- keeps here only an anchor row per project it holds (id, env, name, created_at; blank secret and
-- settings), so its foreign keys resolve. The move_* columns record a move between shards on the
-- directory row (src/shards/move.ts): move_from / move_to while it is under way, move_step the last
-- step done, move_pause_at when the project's pause starts (503 from then until the flip), and
-- move_flipped_at when `shard` was switched to the target, move_owner / move_owner_until the run of
-- `npm run project:move` that holds the move until then (a lease: a second run waits for it to end);
-- all NULL when no move is under way.
CREATE TABLE IF NOT EXISTS projects (
  id TEXT PRIMARY KEY,
  env TEXT NOT NULL CHECK (env IN ('test', 'live')),
  name TEXT NOT NULL DEFAULT '',
  secret_hash TEXT NOT NULL,
  settings TEXT NOT NULL DEFAULT '{}',
  created_at INTEGER NOT NULL,
  public_token TEXT,
  shard INTEGER NOT NULL DEFAULT 0 CHECK (shard >= 0),
  move_from INTEGER,
  move_to INTEGER,
  move_step TEXT,
  move_pause_at INTEGER,
  move_flipped_at INTEGER,
  move_owner TEXT,
  move_owner_until INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS projects_public_token ON projects (public_token)
  WHERE public_token IS NOT NULL;

-- failed_authentications counts consecutive failures (reset by a success);
-- locked_until > now means the user is locked (Stytch user locks).
-- first_name / middle_name / last_name are Stytch's name parts ('' when unset); trusted_metadata and
-- untrusted_metadata are JSON objects of at most 4 KB each; external_id is the caller's own id for the
-- user, unique per project (NULL when unset), usable wherever a user_id is.
-- users_project_created orders users.search pages (keyset on created_at, id), serves its created_at
-- filters and every other lookup by project; users_external_id resolves external ids and enforces their uniqueness.
CREATE TABLE IF NOT EXISTS users (
  id TEXT PRIMARY KEY,
  project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  status TEXT NOT NULL CHECK (status IN ('active', 'pending')),
  created_at INTEGER NOT NULL,
  failed_authentications INTEGER NOT NULL DEFAULT 0,
  lock_created_at INTEGER,
  locked_until INTEGER,
  first_name TEXT NOT NULL DEFAULT '',
  middle_name TEXT NOT NULL DEFAULT '',
  last_name TEXT NOT NULL DEFAULT '',
  trusted_metadata TEXT NOT NULL DEFAULT '{}',
  untrusted_metadata TEXT NOT NULL DEFAULT '{}',
  external_id TEXT
);
CREATE INDEX IF NOT EXISTS users_project_created ON users (project_id, created_at, id);
CREATE UNIQUE INDEX IF NOT EXISTS users_external_id ON users (project_id, external_id)
  WHERE external_id IS NOT NULL;

-- One row per phone number per project: a number belongs to at most one user of a project.
-- attach_expires_at is set when an unverified number was attached to an existing user (/send with a
-- user, exchange_primary_factor); such a row is no claim on the number and is released (deleted) once
-- that time passes without a successful authentication. An unverified row without it is the first
-- phone of a user login_or_create or users.create minted for the number (src/db/phones.ts).
-- replaces_phone_id: on a pending exchange (exchange_primary_factor), the user's phone it replaces;
-- the user's successful code on this number removes that phone and clears the column.
-- phones_user lists a user's numbers; phones_verified answers users.search's phone_verified filter
-- with one key lookup per user (a semi-join), not a walk of the user's numbers.
CREATE TABLE IF NOT EXISTS phones (
  id TEXT PRIMARY KEY,
  project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  phone_number TEXT NOT NULL,
  verified INTEGER NOT NULL DEFAULT 0 CHECK (verified IN (0, 1)),
  attach_expires_at INTEGER,
  created_at INTEGER NOT NULL,
  replaces_phone_id TEXT,
  UNIQUE (project_id, phone_number)
);
CREATE INDEX IF NOT EXISTS phones_user ON phones (user_id);
CREATE INDEX IF NOT EXISTS phones_verified ON phones (project_id, verified, user_id);

-- The authority over the phone's one live code: which code is current (code_id), how many wrong
-- guesses it took, and whether it was consumed. KV has no compare-and-set, so every gate is an atomic
-- conditional UPDATE here. The keyed hash authenticate checks first lives in KV under otp:<phone_id>;
-- mac is a second keyed hash of the same code (base64url HMAC over project, number, code_id and code,
-- never the code), for when KV at the authenticating location lags behind this row (a missing record,
-- or a reordered write leaving an older code's record). ip_hash / ua_hash are keyed hashes (HMAC with
-- the pepper, bound to the project) of the send-time attributes the options.*_match_required checks
-- compare against in that case; the clear values are never stored. ip_address / user_agent held them
-- in clear before that and are always NULL now (kept so a rolled-back Worker still runs; to be
-- dropped by a later migration). attempted_by is the request id of the last wrong attempt counted
-- against the live code: the statements after it in that request's batch (the user lock, the
-- project's failure count) count the attempt only when it was one.
-- sms_country / sms_sent_at are set when an SMS carried the code (sent
-- on an SMS route, or as the fallback of a WhatsApp message): the destination country and when, so a
-- successful authentication counts as an SMS conversion in that country's send minute (the pumping
-- breaker, src/limits.ts); NULL for a code that went by WhatsApp only. WITHOUT ROWID: a gate lives in
-- its key's B-tree only, so each read or write of it is one lookup.
CREATE TABLE IF NOT EXISTS otp_codes (
  phone_id TEXT PRIMARY KEY REFERENCES phones(id) ON DELETE CASCADE,
  project_id TEXT NOT NULL,
  code_id TEXT NOT NULL,
  mac TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  consumed_at INTEGER,
  consumed_by TEXT,
  ip_address TEXT,
  user_agent TEXT,
  created_at INTEGER NOT NULL,
  ip_hash TEXT,
  ua_hash TEXT,
  attempted_by TEXT,
  sms_country TEXT,
  sms_sent_at INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS otp_codes_expiry ON otp_codes (expires_at);

-- One row per delivery job (id = the code_id of the code it carries), written in the same batch that
-- issues the code. The consumer moves it forward; wamid links Meta's status webhooks back to it.
-- status: queued -> sending -> sent -> delivered -> read, or failed / expired. Transitions never move
-- backwards (src/db/deliveries.ts); a webhook 'failed' ranks below 'delivered' (multi-device).
-- lease_until: while a consumer holds the job (status 'sending'), a redelivered copy waits instead of
-- sending again; NULL when no attempt is in flight. attempts counts provider calls; error_code is Meta's
-- error.code of the last failure and error_detail our label for it (never Meta's free text).
-- channel: 'whatsapp' or 'sms'; wamid holds the provider's message id (Meta's wamid, Twilio's SM… sid).
-- code_id: the code carried when it is not the row's own id, i.e. on an SMS fallback row, whose
-- fallback_of names the WhatsApp delivery it replaces (at most one per delivery). fallback_code: the code
-- sealed exactly as in its queue job (AES-256-GCM under CODE_ENCRYPTION_KEY) with its locale, kept on a
-- sent WhatsApp delivery of a project with whatsapp_fallback 'sms' until Meta reports it final; cleared
-- then, and by the hourly retention run once the code has expired.
CREATE TABLE IF NOT EXISTS deliveries (
  id TEXT PRIMARY KEY,
  project_id TEXT NOT NULL,
  phone_id TEXT NOT NULL,
  provider TEXT,
  status TEXT NOT NULL DEFAULT 'queued'
    CHECK (status IN ('queued', 'sending', 'sent', 'delivered', 'read', 'failed', 'expired')),
  wamid TEXT,
  attempts INTEGER NOT NULL DEFAULT 0,
  error_code INTEGER,
  error_detail TEXT,
  lease_until INTEGER,
  expires_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  channel TEXT NOT NULL DEFAULT 'whatsapp' CHECK (channel IN ('whatsapp', 'sms')),
  code_id TEXT,
  fallback_of TEXT,
  fallback_code TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_wamid ON deliveries (wamid) WHERE wamid IS NOT NULL;
CREATE INDEX IF NOT EXISTS deliveries_phone ON deliveries (phone_id);
CREATE INDEX IF NOT EXISTS deliveries_created ON deliveries (created_at);
CREATE UNIQUE INDEX IF NOT EXISTS deliveries_fallback_of ON deliveries (fallback_of) WHERE fallback_of IS NOT NULL;
CREATE INDEX IF NOT EXISTS deliveries_fallback_code ON deliveries (expires_at) WHERE fallback_code IS NOT NULL;

-- Local development outbox of the console providers (never written by the meta or twilio provider);
-- channel: 'whatsapp' or 'sms'.
CREATE TABLE IF NOT EXISTS dev_outbox (
  id TEXT PRIMARY KEY,
  phone_number TEXT NOT NULL,
  code TEXT NOT NULL,
  locale TEXT NOT NULL,
  text TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  channel TEXT NOT NULL DEFAULT 'whatsapp'
);
CREATE INDEX IF NOT EXISTS dev_outbox_phone ON dev_outbox (phone_number, created_at);
CREATE INDEX IF NOT EXISTS dev_outbox_created ON dev_outbox (created_at);

-- Never holds a row. A batch's guard statement inserts one only when a limit is exceeded, with 1 in
-- that limit's column; the named CHECK then fails, D1 rolls back the whole batch, and the constraint
-- name in the error tells which limit tripped (mapped to 429 too_many_requests).
CREATE TABLE IF NOT EXISTS limit_guard (
  phone_cooldown INTEGER CONSTRAINT limit_phone_cooldown CHECK (phone_cooldown = 0),
  phone_sends_per_hour INTEGER CONSTRAINT limit_phone_sends_per_hour CHECK (phone_sends_per_hour = 0),
  phone_sends_per_day INTEGER CONSTRAINT limit_phone_sends_per_day CHECK (phone_sends_per_day = 0),
  ip_sends_per_hour INTEGER CONSTRAINT limit_ip_sends_per_hour CHECK (ip_sends_per_hour = 0),
  country_sends_per_hour INTEGER CONSTRAINT limit_country_sends_per_hour CHECK (country_sends_per_hour = 0),
  new_users_per_hour INTEGER CONSTRAINT limit_new_users_per_hour CHECK (new_users_per_hour = 0),
  ip_failed_auths_per_hour INTEGER CONSTRAINT limit_ip_failed_auths_per_hour CHECK (ip_failed_auths_per_hour = 0),
  ipv6_56_sends_per_hour INTEGER CONSTRAINT limit_ipv6_56_sends_per_hour CHECK (ipv6_56_sends_per_hour = 0),
  ipv6_48_sends_per_hour INTEGER CONSTRAINT limit_ipv6_48_sends_per_hour CHECK (ipv6_48_sends_per_hour = 0),
  ipv6_56_failed_auths_per_hour INTEGER
    CONSTRAINT limit_ipv6_56_failed_auths_per_hour CHECK (ipv6_56_failed_auths_per_hour = 0),
  ipv6_48_failed_auths_per_hour INTEGER
    CONSTRAINT limit_ipv6_48_failed_auths_per_hour CHECK (ipv6_48_failed_auths_per_hour = 0),
  failed_auths_per_hour INTEGER CONSTRAINT limit_failed_auths_per_hour CHECK (failed_auths_per_hour = 0),
  search_rows_per_minute INTEGER CONSTRAINT limit_search_rows_per_minute CHECK (search_rows_per_minute = 0),
  sms_country_sends_per_hour INTEGER
    CONSTRAINT limit_sms_country_sends_per_hour CHECK (sms_country_sends_per_hour = 0),
  sms_country_paused INTEGER CONSTRAINT limit_sms_country_paused CHECK (sms_country_paused = 0)
);

-- Abuse-limit counters (src/limits.ts decides what is counted, src/db/limit-counters.ts how).
-- kind is the limit counted (e.g. 'country_sends_per_hour'), or 'phone' for sends to one number;
-- subject is the E.164 number, the ISO country ('001' for numbers without one), '' for per-project
-- counters, or for per-IP kinds a keyed hash (HMAC with the pepper) of the IPv4 address or IPv6
-- prefix, never the IP itself. bucket is the start (ms) of the bucket counted in: the event's own
-- millisecond for 'phone' (exact windows), the minute for the others. n = events in that bucket
-- (for 'search_rows_per_minute', the rows D1 read for the project's user searches in that minute).
-- expires_at = when the row has left every window; the hourly retention run deletes the rows past
-- it (src/retention.ts), so no request pays for the sweep. The SMS pumping breaker keeps its state here too: 'sms_conversions'
-- counts SMS codes authenticated, in the minute their SMS was sent; an 'sms_breaker' row (bucket = the
-- trip's millisecond) pauses SMS to its country for the project's cool-down. WITHOUT ROWID: a row
-- lives in its key's B-tree only, so counting an event writes it once and a window sum reads it there.
CREATE TABLE IF NOT EXISTS limit_counters (
  project_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  subject TEXT NOT NULL,
  bucket INTEGER NOT NULL,
  n INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  PRIMARY KEY (project_id, kind, subject, bucket)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS limit_counters_expiry ON limit_counters (expires_at);

-- Session JWT signing keys (RS256), one active per project (retired_at NULL; the partial unique index
-- makes concurrent key creation race-safe). private_key_* is the PKCS#8 key sealed with AES-256-GCM
-- under a key derived (HKDF) from the SESSION_KEY_ENCRYPTION_KEY secret, bound to project and kid;
-- public_jwk is the JWKS entry. sealed_with is a fingerprint of the secret that sealed it (NULL: sealed
-- before the column, then under the secret itself; re-sealed when next read).
-- A retired key stays published and trusted until its JWTs have expired (src/sessions/keys.ts).
CREATE TABLE IF NOT EXISTS session_signing_keys (
  kid TEXT PRIMARY KEY,
  project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  public_jwk TEXT NOT NULL,
  private_key_iv TEXT NOT NULL,
  private_key_ct TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  retired_at INTEGER,
  sealed_with TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS session_signing_keys_active ON session_signing_keys (project_id)
  WHERE retired_at IS NULL;
CREATE INDEX IF NOT EXISTS session_signing_keys_project ON session_signing_keys (project_id, retired_at);

-- A session is live while expires_at > now. Sessions are looked up by the token's SHA-256 (hex): it
-- has 264 bits of entropy, so no pepper is needed. token_iv / token_ct hold the token itself sealed
-- with AES-256-GCM under a key derived (HKDF) from SESSION_KEY_ENCRYPTION_KEY, bound to project and
-- session id, so a reply naming the session by its JWT can return the token; NULL for sessions
-- started before the column existed. Revocation deletes the row, and deleting the user deletes
-- its sessions (cascade). custom_claims is a JSON object of at most 4 KB without reserved claims.
-- attributes_iv / attributes_ct hold the attributes given when the session started (IP address and
-- user agent, as JSON) sealed the same way under a sibling derived key; ip_address / user_agent held
-- them in clear before that and are '' since (a sealing run clears the older rows; to be dropped by a
-- later migration). sealed_with is a fingerprint of the SESSION_KEY_ENCRYPTION_KEY that sealed the row
-- (NULL before the column): the hourly run re-seals rows sealed under an older key (sessions_sealed_with).
CREATE TABLE IF NOT EXISTS sessions (
  id TEXT PRIMARY KEY,
  project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  token_hash TEXT NOT NULL UNIQUE,
  started_at INTEGER NOT NULL,
  last_accessed_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  ip_address TEXT NOT NULL DEFAULT '',
  user_agent TEXT NOT NULL DEFAULT '',
  custom_claims TEXT NOT NULL DEFAULT '{}',
  token_iv TEXT,
  token_ct TEXT,
  attributes_iv TEXT,
  attributes_ct TEXT,
  sealed_with TEXT
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user_id, expires_at);
CREATE INDEX IF NOT EXISTS sessions_expiry ON sessions (expires_at);
CREATE INDEX IF NOT EXISTS sessions_sealed_with ON sessions (sealed_with);

-- The factors a session was authenticated with: one row per (session, factor kind, phone), refreshed
-- by each new authentication with the same phone. phone_number is the number at that time.
CREATE TABLE IF NOT EXISTS session_factors (
  session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
  type TEXT NOT NULL,
  delivery_method TEXT NOT NULL,
  phone_id TEXT NOT NULL,
  phone_number TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  last_authenticated_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (session_id, type, delivery_method, phone_id)
);

-- While a project moves off this shard, the keys of its rows written here since the move began: one
-- entry per inserted, updated or deleted row (tbl = the table, row_key = its primary key as a JSON
-- array), written by triggers the move creates for that one project and drops when it is done
-- (src/db/shard-move.ts). The move copies what the keys name again, then deletes the entries.
CREATE TABLE IF NOT EXISTS shard_move_log (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  project_id TEXT NOT NULL,
  tbl TEXT NOT NULL,
  row_key TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS shard_move_log_project ON shard_move_log (project_id, id);
