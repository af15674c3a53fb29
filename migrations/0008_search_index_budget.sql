-- users.search: the phone_verified filter is a semi-join on this index (a user's verified or
-- unverified numbers found by one key lookup, without reading the user's other phones), and the
-- per-project search budget gets its guard column (src/limits.ts). Additive only: the previous
-- Worker version runs unchanged against the migrated database.
CREATE INDEX IF NOT EXISTS phones_verified ON phones (project_id, verified, user_id);
ALTER TABLE limit_guard ADD COLUMN search_rows_per_minute INTEGER
  CONSTRAINT limit_search_rows_per_minute CHECK (search_rows_per_minute = 0);
