-- exchange_primary_factor no longer replaces a number on the spot: the new number is added as a
-- pending exchange, an attachment (attach_expires_at set) naming the phone it replaces. The user's
-- own code on it completes the swap; until then it is no claim on the number.
-- Expand: the column is nullable, so a Worker of the previous version keeps running (it reads a
-- pending exchange as an ordinary attachment, and never writes the column).
ALTER TABLE phones ADD COLUMN replaces_phone_id TEXT;
-- Unverified numbers put on existing users by earlier exchanges were written as owner claims
-- (attach_expires_at NULL), the form only login_or_create and users.create may write: for the user
-- they mint, in the same batch and at the same instant as the user. Such a claim was never proven, and
-- it routes the number's real owner into that user's account, so it becomes what an exchange writes
-- now: an attachment, here one whose 5-minute window has passed. It is released the next time its
-- number is used and no longer shown; the user keeps its account and can add a number again
-- (/send with user_id, then authenticate).
UPDATE phones SET attach_expires_at = created_at + 300000
  WHERE verified = 0 AND attach_expires_at IS NULL
    AND created_at <> (SELECT u.created_at FROM users u WHERE u.id = phones.user_id);
