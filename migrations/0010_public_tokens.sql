-- Public tokens: what Stytch's frontend SDKs (@stytch/vanilla-js, @stytch/react, …) present to /sdk/v1
-- instead of a secret. Every project gets one, public-token-<env>-<uuid v4>; it names the project and
-- is not secret (it ships in web pages), so it is stored as is and looked up by its unique index.
-- Expand only: the column is nullable, so a Worker of the previous version keeps inserting projects
-- (which then have no frontend SDK access until a token is set) and ignores it.
ALTER TABLE projects ADD COLUMN public_token TEXT;
-- Existing projects get a random token (a UUID v4 built from SQLite's randomblob).
UPDATE projects SET public_token = 'public-token-' || env || '-' || lower(hex(randomblob(4))) || '-' ||
  lower(hex(randomblob(2))) || '-4' || substr(lower(hex(randomblob(2))), 2) || '-' ||
  substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) || '-' ||
  lower(hex(randomblob(6)))
  WHERE public_token IS NULL;
CREATE UNIQUE INDEX IF NOT EXISTS projects_public_token ON projects (public_token)
  WHERE public_token IS NOT NULL;
