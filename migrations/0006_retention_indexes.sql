-- Indexes for the retention purge (src/retention.ts): each purge statement finds its oldest rows by
-- the column it compares, instead of scanning the table every hour. Additive only: the previous
-- Worker version runs unchanged against the migrated database.
CREATE INDEX IF NOT EXISTS otp_codes_expiry ON otp_codes (expires_at);
CREATE INDEX IF NOT EXISTS deliveries_created ON deliveries (created_at);
CREATE INDEX IF NOT EXISTS sessions_expiry ON sessions (expires_at);
CREATE INDEX IF NOT EXISTS dev_outbox_created ON dev_outbox (created_at);
