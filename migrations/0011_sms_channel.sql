-- SMS as a second delivery channel beside WhatsApp: the channel of each delivery, the SMS fallback of
-- a WhatsApp delivery (linked by fallback_of, at most one per delivery), the sealed code a fallback
-- needs while the WhatsApp message may still fail, what an SMS carried a code (for the pumping
-- breaker's conversion count), the channel of a dev-outbox message, and the guard columns of the two
-- SMS limits. Expand only: every column is nullable or has a default, so the previous Worker keeps
-- writing WhatsApp deliveries, codes and outbox messages as before.
ALTER TABLE deliveries ADD COLUMN channel TEXT NOT NULL DEFAULT 'whatsapp' CHECK (channel IN ('whatsapp', 'sms'));
ALTER TABLE deliveries ADD COLUMN code_id TEXT;
ALTER TABLE deliveries ADD COLUMN fallback_of TEXT;
ALTER TABLE deliveries ADD COLUMN fallback_code TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS deliveries_fallback_of ON deliveries (fallback_of) WHERE fallback_of IS NOT NULL;
CREATE INDEX IF NOT EXISTS deliveries_fallback_code ON deliveries (expires_at) WHERE fallback_code IS NOT NULL;
ALTER TABLE otp_codes ADD COLUMN sms_country TEXT;
ALTER TABLE otp_codes ADD COLUMN sms_sent_at INTEGER;
ALTER TABLE dev_outbox ADD COLUMN channel TEXT NOT NULL DEFAULT 'whatsapp';
ALTER TABLE limit_guard ADD COLUMN sms_country_sends_per_hour INTEGER
  CONSTRAINT limit_sms_country_sends_per_hour CHECK (sms_country_sends_per_hour = 0);
ALTER TABLE limit_guard ADD COLUMN sms_country_paused INTEGER
  CONSTRAINT limit_sms_country_paused CHECK (sms_country_paused = 0);
