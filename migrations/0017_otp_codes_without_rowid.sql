-- otp_codes becomes a WITHOUT ROWID table, for the reason limit_counters did (0016): as a rowid table
-- each gate was kept twice over, in the table and in the automatic index of its primary key
-- (phone_id), so every read of a phone's gate looked phone_id up in that index and then fetched the
-- row from the table, and every write touched both. A login reads the gate (the live code it
-- replaces) and writes it; an authenticate reads it several times in its one batch (the gate
-- update, the success's conditions, the read-back). Now each is one lookup in one B-tree.
--
-- Rebuilt as 0016 rebuilt limit_counters: the old table renamed aside, the new one created exactly
-- as schema.sql declares it (its foreign key to phones included), every row copied, the old table
-- (and its index) dropped, the index created again. Nothing names a gate by rowid: the retention
-- purge and project moves name rows by their key, in this release and in the one before it, so a
-- rollback to that Worker runs against the rebuilt table too. Expired gates are purged every hour,
-- so the copy holds the gates of recent logins only, in key order (as 0016 copies its rows).
ALTER TABLE otp_codes RENAME TO otp_codes_rowid;
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
INSERT INTO otp_codes (phone_id, project_id, code_id, mac, expires_at, attempts, consumed_at, consumed_by,
    ip_address, user_agent, created_at, ip_hash, ua_hash, attempted_by, sms_country, sms_sent_at)
  SELECT phone_id, project_id, code_id, mac, expires_at, attempts, consumed_at, consumed_by,
    ip_address, user_agent, created_at, ip_hash, ua_hash, attempted_by, sms_country, sms_sent_at
  FROM otp_codes_rowid
  ORDER BY phone_id;
DROP TABLE otp_codes_rowid;
CREATE INDEX IF NOT EXISTS otp_codes_expiry ON otp_codes (expires_at);
