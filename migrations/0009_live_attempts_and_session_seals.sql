-- Failed authentications counted only against a live code.
-- Expand only: every column is nullable, so the previous Worker keeps running against the migrated
-- database.
--
-- otp_codes.attempted_by: the request id of the last wrong attempt counted against the code while it
-- was live, so the statements after it in that request's batch (the user lock, the project's failure
-- count) count the attempt only then.
ALTER TABLE otp_codes ADD COLUMN attempted_by TEXT;
