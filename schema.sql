-- The single D1 schema. Applied locally by `npm run dev`, in tests by test/setup.ts, and in production
-- by `npm run db:apply -- --remote`. Every statement is idempotent (IF NOT EXISTS) and there are no
-- triggers, so the file can be split on ';' at the end of a line.
-- Times are integer milliseconds since the Unix epoch, always passed in from the Worker's clock.

-- A tenant. The secret is stored only as SHA-256 (hex) and compared in constant time.
-- settings: JSON of per-project limits; absent keys take the documented defaults (src/settings.ts).
CREATE TABLE IF NOT EXISTS projects (
  id TEXT PRIMARY KEY,
  env TEXT NOT NULL CHECK (env IN ('test', 'live')),
  name TEXT NOT NULL DEFAULT '',
  secret_hash TEXT NOT NULL,
  settings TEXT NOT NULL DEFAULT '{}',
  created_at INTEGER NOT NULL
);

-- failed_authentications counts consecutive failures (reset by a success);
-- locked_until > now means the user is locked (Stytch user locks).
CREATE TABLE IF NOT EXISTS users (
  id TEXT PRIMARY KEY,
  project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  status TEXT NOT NULL CHECK (status IN ('active', 'pending')),
  created_at INTEGER NOT NULL,
  failed_authentications INTEGER NOT NULL DEFAULT 0,
  lock_created_at INTEGER,
  locked_until INTEGER
);
CREATE INDEX IF NOT EXISTS users_project ON users (project_id);

-- One row per phone number per project: a number belongs to at most one user of a project.
-- attach_expires_at is set when /send attached an unverified number to an existing user; such a
-- row is released (deleted) once that time passes without a successful authentication.
CREATE TABLE IF NOT EXISTS phones (
  id TEXT PRIMARY KEY,
  project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  phone_number TEXT NOT NULL,
  verified INTEGER NOT NULL DEFAULT 0 CHECK (verified IN (0, 1)),
  attach_expires_at INTEGER,
  created_at INTEGER NOT NULL,
  UNIQUE (project_id, phone_number)
);
CREATE INDEX IF NOT EXISTS phones_user ON phones (user_id);

-- The authority over the phone's one live code: which code is current (code_id), how many wrong
-- guesses it took, and whether it was consumed. The keyed hash of the code itself lives in KV under
-- otp:<phone_id>; KV has no compare-and-set, so every gate is an atomic conditional UPDATE here.
CREATE TABLE IF NOT EXISTS otp_codes (
  phone_id TEXT PRIMARY KEY REFERENCES phones(id) ON DELETE CASCADE,
  project_id TEXT NOT NULL,
  code_id TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  consumed_at INTEGER,
  consumed_by TEXT,
  created_at INTEGER NOT NULL
);

-- One row per delivery job (id = the code_id of the code it carries), written in the same batch that
-- issues the code. The consumer moves it forward; wamid links Meta's status webhooks back to it.
-- status: queued -> sending -> sent -> delivered -> read, or failed / expired. Transitions never move
-- backwards (src/whatsapp/deliveries.ts); a webhook 'failed' ranks below 'delivered' (multi-device).
-- lease_until: while a consumer holds the job (status 'sending'), a redelivered copy waits instead of
-- sending again; NULL when no attempt is in flight. attempts counts provider calls; error_code is Meta's
-- error.code of the last failure and error_detail our label for it (never Meta's free text).
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
  updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_wamid ON deliveries (wamid);
CREATE INDEX IF NOT EXISTS deliveries_phone ON deliveries (phone_id);

-- Local development outbox of the console provider (never written with the meta provider).
CREATE TABLE IF NOT EXISTS dev_outbox (
  id TEXT PRIMARY KEY,
  phone_number TEXT NOT NULL,
  code TEXT NOT NULL,
  locale TEXT NOT NULL,
  text TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS dev_outbox_phone ON dev_outbox (phone_number, created_at);
