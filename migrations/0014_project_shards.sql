-- Projects on several D1 databases (shards). The first database (binding DB) is the directory: its
-- projects table says which shard holds each project's users, phones, codes, deliveries, sessions,
-- signing keys and limit counters (shard 0 is DB itself, shard N the binding DB_N). Every shard has
-- the whole schema; a shard other than 0 keeps in its projects table only a row per project it holds,
-- so its foreign keys resolve (that row's secret, settings and token are blank: the directory's are read).
-- A move between shards (`npm run project:move`) records its progress on the directory row:
-- move_from / move_to while it is under way, move_step the last step done, move_pause_at when the
-- project's pause starts (requests are answered 503 from then until the flip), move_flipped_at when
-- projects.shard was switched to the target, move_owner / move_owner_until the run of the move that
-- holds it (a second run is refused until that lease ends). The source shard logs the keys of the project's rows
-- written during a move in shard_move_log (filled by triggers the move creates and drops).
-- Expand only: the previous Worker ignores the columns and keeps using DB for every project, which is
-- where every project lives until one is created on or moved to another shard.
ALTER TABLE projects ADD COLUMN shard INTEGER NOT NULL DEFAULT 0 CHECK (shard >= 0);
ALTER TABLE projects ADD COLUMN move_from INTEGER;
ALTER TABLE projects ADD COLUMN move_to INTEGER;
ALTER TABLE projects ADD COLUMN move_step TEXT;
ALTER TABLE projects ADD COLUMN move_pause_at INTEGER;
ALTER TABLE projects ADD COLUMN move_flipped_at INTEGER;
ALTER TABLE projects ADD COLUMN move_owner TEXT;
ALTER TABLE projects ADD COLUMN move_owner_until INTEGER;
CREATE TABLE IF NOT EXISTS shard_move_log (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  project_id TEXT NOT NULL,
  tbl TEXT NOT NULL,
  row_key TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS shard_move_log_project ON shard_move_log (project_id, id);
