-- Baseline for a D1 database created before the service used migrations: its tables came from the
-- schema file of that time, which is exactly migrations/0001_initial.sql. This records 0001 as applied
-- in the d1_migrations table (created exactly as `wrangler d1 migrations apply` creates it), so the
-- next `npm run db:migrate` starts from 0002. It records nothing in a database without the tables
-- (that one needs the whole of 0001) or one that already records migrations, so it is safe to repeat.
CREATE TABLE IF NOT EXISTS d1_migrations(
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  name       TEXT UNIQUE,
  applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL
);
INSERT INTO d1_migrations (name)
  SELECT '0001_initial.sql'
  WHERE EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'projects')
    AND NOT EXISTS (SELECT 1 FROM d1_migrations);
