-- The Users API: name, metadata and external_id on users; the session token kept sealed.
-- Expand only: every column is nullable or has a default, so a Worker of the previous version keeps
-- inserting and reading users and sessions as before; its sessions simply have no sealed token.
ALTER TABLE users ADD COLUMN first_name TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN middle_name TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN last_name TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN trusted_metadata TEXT NOT NULL DEFAULT '{}';
ALTER TABLE users ADD COLUMN untrusted_metadata TEXT NOT NULL DEFAULT '{}';
ALTER TABLE users ADD COLUMN external_id TEXT;
CREATE INDEX IF NOT EXISTS users_project_created ON users (project_id, created_at, id);
CREATE UNIQUE INDEX IF NOT EXISTS users_external_id ON users (project_id, external_id)
  WHERE external_id IS NOT NULL;
ALTER TABLE sessions ADD COLUMN token_iv TEXT;
ALTER TABLE sessions ADD COLUMN token_ct TEXT;
