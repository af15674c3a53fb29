-- The send-time IP address and user agent of a code are kept only as keyed hashes (HMAC with the
-- pepper), never in clear. Expand only: the clear columns stay (always NULL from now on) so that the
-- previous Worker version keeps running against this schema during a rollback; a later migration
-- drops them.
ALTER TABLE otp_codes ADD COLUMN ip_hash TEXT;
ALTER TABLE otp_codes ADD COLUMN ua_hash TEXT;
-- Clear attributes of codes that can no longer be used serve nothing: gone. Live codes (at most ten
-- minutes old) keep theirs until they are used or expire, so a deploy interrupts no login.
UPDATE otp_codes SET ip_address = NULL, user_agent = NULL
  WHERE consumed_at IS NOT NULL OR expires_at <= CAST(strftime('%s', 'now') AS INTEGER) * 1000;
