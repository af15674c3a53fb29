-- Abuse limits counted in bounded buckets (limit_counters) instead of one row per event
-- (limit_events), and the new limits' guard columns. Expand only: the previous Worker keeps using
-- limit_events and the existing guard columns; limit_events is dropped by a later migration once no
-- deployed Worker writes it.
CREATE TABLE IF NOT EXISTS limit_counters (
  project_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  subject TEXT NOT NULL,
  bucket INTEGER NOT NULL,
  n INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  PRIMARY KEY (project_id, kind, subject, bucket)
);
CREATE INDEX IF NOT EXISTS limit_counters_expiry ON limit_counters (expires_at);
ALTER TABLE limit_guard ADD COLUMN ipv6_56_sends_per_hour INTEGER
  CONSTRAINT limit_ipv6_56_sends_per_hour CHECK (ipv6_56_sends_per_hour = 0);
ALTER TABLE limit_guard ADD COLUMN ipv6_48_sends_per_hour INTEGER
  CONSTRAINT limit_ipv6_48_sends_per_hour CHECK (ipv6_48_sends_per_hour = 0);
ALTER TABLE limit_guard ADD COLUMN ipv6_56_failed_auths_per_hour INTEGER
  CONSTRAINT limit_ipv6_56_failed_auths_per_hour CHECK (ipv6_56_failed_auths_per_hour = 0);
ALTER TABLE limit_guard ADD COLUMN ipv6_48_failed_auths_per_hour INTEGER
  CONSTRAINT limit_ipv6_48_failed_auths_per_hour CHECK (ipv6_48_failed_auths_per_hour = 0);
ALTER TABLE limit_guard ADD COLUMN failed_auths_per_hour INTEGER
  CONSTRAINT limit_failed_auths_per_hour CHECK (failed_auths_per_hour = 0);
