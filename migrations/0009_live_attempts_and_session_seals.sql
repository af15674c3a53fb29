-- Failed authentications counted only against a live code, and sessions sealed at rest.
-- Expand only: every column is nullable, so the previous Worker keeps running against the migrated
-- database (it ignores the new columns; sessions it starts keep their attributes in clear and are
-- sealed by the next Worker's hourly run). A Worker rolled back to before this release shows empty
-- attributes for sessions sealed since, and cannot open signing keys sealed under the derived key: it
-- replaces each project's key on next use (JWTs the old key signed stay valid until they expire).
--
-- otp_codes.attempted_by: the request id of the last wrong attempt counted against the code while it
-- was live, so the statements after it in that request's batch (the user lock, the project's failure
-- count) count the attempt only then.
ALTER TABLE otp_codes ADD COLUMN attempted_by TEXT;
-- sessions.attributes_iv / attributes_ct: the session's IP address and user agent, sealed; the clear
-- ip_address / user_agent columns are '' for sessions started since (to be dropped later).
ALTER TABLE sessions ADD COLUMN attributes_iv TEXT;
ALTER TABLE sessions ADD COLUMN attributes_ct TEXT;
-- sealed_with: which SESSION_KEY_ENCRYPTION_KEY sealed the row (a fingerprint derived from it, never
-- the key); NULL for rows sealed before this column. The hourly run re-seals rows under an older key.
ALTER TABLE sessions ADD COLUMN sealed_with TEXT;
CREATE INDEX IF NOT EXISTS sessions_sealed_with ON sessions (sealed_with);
ALTER TABLE session_signing_keys ADD COLUMN sealed_with TEXT;
