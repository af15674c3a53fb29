-- Fewer index entries written per login. D1 counts (and bills) every index entry a write touches
-- as a row written, and these two indexes wrote entries that no query needs:
--
-- users_project (project_id) is a prefix of users_project_created (project_id, created_at, id),
-- which serves every lookup by project as well; keeping both wrote two entries per new user.
--
-- deliveries_wamid indexed every delivery, though a delivery has no provider message id (wamid)
-- until it is sent: each queued delivery wrote a NULL entry, then moved it when it was sent. Status
-- lookups (wamid = ?) use the partial index, which holds only the rows that have one.
--
-- Both are safe under any Worker before or after this migration: no query names an index, and
-- every query by project or by message id finds one to use.
DROP INDEX IF EXISTS users_project;
DROP INDEX IF EXISTS deliveries_wamid;
CREATE INDEX IF NOT EXISTS deliveries_wamid ON deliveries (wamid) WHERE wamid IS NOT NULL;
