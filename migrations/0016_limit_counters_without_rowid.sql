-- limit_counters becomes a WITHOUT ROWID table: its rows are stored in its primary key's own B-tree.
-- As a rowid table it kept every row twice over (the table, and the automatic index of its primary
-- key): each counted send wrote both, and each window sum looked a row up in the key's index and
-- then fetched its count from the table. Every login_or_create writes three or more counter rows
-- and sums their windows, so this halves that work. D1 counts (and bills) the key index's entries
-- as rows written; `npm run bench` shows those of a new number's login_or_create fall with them.
--
-- The table is rebuilt: the old one is renamed aside, the new one created exactly as schema.sql
-- declares it, the rows copied, the old table (and its index) dropped, the index created again.
-- Nothing names a counter row by rowid: the retention purge and project moves name rows by their
-- key, in this release and in the one before it, so a rollback to that Worker runs against the
-- rebuilt table too.
--
-- The rows are copied in key order, so the new B-tree is filled front to back (1,000,000 counter rows:
-- 7.4 s instead of 9-13 s in SQLite 3.51). Counter rows live at most a day and a bucket, so the copy
-- is about a day's sends. D1 stops a query after 30 s, so a database that counted more than a few
-- million sends in the last day should take this migration at a quieter time.
ALTER TABLE limit_counters RENAME TO limit_counters_rowid;
CREATE TABLE IF NOT EXISTS limit_counters (
  project_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  subject TEXT NOT NULL,
  bucket INTEGER NOT NULL,
  n INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  PRIMARY KEY (project_id, kind, subject, bucket)
) WITHOUT ROWID;
INSERT INTO limit_counters (project_id, kind, subject, bucket, n, expires_at)
  SELECT project_id, kind, subject, bucket, n, expires_at FROM limit_counters_rowid
  ORDER BY project_id, kind, subject, bucket;
DROP TABLE limit_counters_rowid;
CREATE INDEX IF NOT EXISTS limit_counters_expiry ON limit_counters (expires_at);
