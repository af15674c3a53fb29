import { Batch } from './batch'
import { issuedFor } from './phones'

/**
 * The deliveries table (schema.sql): one row per delivery job, on WhatsApp or SMS. A code's own
 * delivery has id = code_id; an SMS fallback of it is a second row naming the code (code_id) and the
 * delivery it replaces (fallback_of). Queues deliver at least once, so every step is a conditional
 * UPDATE that only moves a row forward; a duplicate or late copy of a job, or of a webhook, finds
 * nothing to update.
 */

/** The code a delivery row carries: its own id, or on a fallback row the code it names. */
const CARRIED_CODE = 'COALESCE(code_id, id)'

/** deliveries.status; the CHECK constraint in schema.sql lists the same values. */
export type DeliveryStatus = 'queued' | 'sending' | 'sent' | 'delivered' | 'read' | 'failed' | 'expired'

/**
 * The delivery record of a newly issued code, written in the issuing batch: status 'queued', id =
 * the code id. The phone is addressed by number (the batch may create it); the row is written only
 * when the code's gate row is (issuedFor in src/db/phones.ts), so a refused send leaves no delivery
 * behind and counts nothing against the send limits, which count delivery rows.
 */
export function queuedDeliveryStatement(
  db: D1Database,
  projectId: string,
  phoneNumber: string,
  code: { codeId: string; expiresAt: number; createdAt: number },
  ownerUserId: string | null,
  channel: 'whatsapp' | 'sms',
): D1PreparedStatement {
  return db
    .prepare(
      `INSERT INTO deliveries (id, project_id, phone_id, status, expires_at, created_at, updated_at, channel)
       SELECT ?3, ?1, id, 'queued', ?4, ?5, ?5, ?7 FROM phones
       WHERE project_id = ?1 AND phone_number = ?2 AND ${issuedFor('?6')}`,
    )
    .bind(projectId, phoneNumber, code.codeId, code.expiresAt, code.createdAt, ownerUserId, channel)
}

/**
 * The SMS fallback of WhatsApp delivery `fromId`, queued, with id `id`: written only while the code
 * that delivery carries is still live (unexpired, unused, still the phone's current code) and only
 * once per delivery (a second attempt, or a concurrent one, finds the fallback already there; the
 * unique index on fallback_of backs the condition). RETURNING tells whether it was written.
 */
export function fallbackDeliveryStatement(db: D1Database, id: string, fromId: string, at: number) {
  return db
    .prepare(
      `INSERT INTO deliveries (id, project_id, phone_id, status, expires_at, created_at, updated_at, channel,
         code_id, fallback_of)
       SELECT ?1, w.project_id, w.phone_id, 'queued', w.expires_at, ?3, ?3, 'sms', COALESCE(w.code_id, w.id), w.id
       FROM deliveries w
       WHERE w.id = ?2 AND w.channel = 'whatsapp' AND w.expires_at > ?3
         AND COALESCE(w.code_id, w.id) =
           (SELECT code_id FROM otp_codes c WHERE c.phone_id = w.phone_id AND c.consumed_at IS NULL)
         AND NOT EXISTS (SELECT 1 FROM deliveries f WHERE f.fallback_of = w.id)
       RETURNING id, code_id, phone_id, expires_at`,
    )
    .bind(id, fromId, at)
}

// A pending row that nobody holds.
const CLAIMABLE = `status IN ('queued', 'sending') AND (lease_until IS NULL OR lease_until <= ?2)`

/** A lease taken: the job, the attempt count including this one and when the code was issued. */
export interface LeasedRow {
  id: string
  attempts: number
  created_at: number
}

/**
 * Takes the lease on jobs `ids` (distinct) for one send attempt each until `at + leaseMs`, in one
 * statement whatever their number (the ids as one JSON array). Only a free, pending row whose code
 * is unexpired and still the phone's current code (otp_codes.code_id) is claimed. Returns a
 * LeasedRow per job claimed; a job missing from them was not.
 */
export function leaseStatement(
  db: D1Database,
  ids: readonly string[],
  provider: string,
  at: number,
  leaseMs: number,
): D1PreparedStatement {
  return db.prepare(LEASE_SQL).bind(JSON.stringify(ids), at, provider, leaseMs)
}

/** leaseStatement's SQL: ?1 the ids (JSON array), ?2 now, ?3 the provider, ?4 the lease's length. */
export const LEASE_SQL = `UPDATE deliveries SET status = 'sending', attempts = attempts + 1, provider = ?3,
    lease_until = ?2 + ?4,
    updated_at = ?2
  WHERE id IN (SELECT value FROM json_each(?1)) AND ${CLAIMABLE} AND expires_at > ?2
    AND ${CARRIED_CODE} = (SELECT code_id FROM otp_codes WHERE otp_codes.phone_id = deliveries.phone_id)
  RETURNING id, attempts, created_at`

/**
 * Records a free, pending row as 'expired', with whether its code had expired or been replaced.
 * Returns that reason, or null when the row was not free and pending.
 */
export async function expireDelivery(
  db: D1Database,
  id: string,
  at: number,
): Promise<'code_expired' | 'code_superseded' | null> {
  const row = await db
    .prepare(
      `UPDATE deliveries SET status = 'expired', lease_until = NULL, updated_at = ?2,
         error_detail = CASE WHEN expires_at <= ?2 THEN 'code_expired' ELSE 'code_superseded' END
       WHERE id = ?1 AND ${CLAIMABLE}
       RETURNING error_detail`,
    )
    .bind(id, at)
    .first<{ error_detail: 'code_expired' | 'code_superseded' }>()
  return row ? row.error_detail : null
}

/** The delivery's status and lease, or null when there is no such row. */
export function deliveryState(
  db: D1Database,
  id: string,
): Promise<{ status: DeliveryStatus; lease_until: number | null } | null> {
  return db
    .prepare('SELECT status, lease_until FROM deliveries WHERE id = ?1')
    .bind(id)
    .first<{ status: DeliveryStatus; lease_until: number | null }>()
}

/** A message the provider accepted: its delivery, the provider's message id, and what a fallback keeps. */
export interface SentDelivery {
  id: string
  messageId: string | null
  /**
   * A WhatsApp message of a project that falls back to SMS: what the fallback needs if Meta later
   * reports the message undeliverable, kept until a status makes the delivery final.
   */
  fallbackCode: string | null
}

/**
 * The provider accepted these messages: their deliveries are recorded sent, each with its message id
 * and fallback code, and the last attempt's error is cleared (it no longer describes the row). One
 * statement whatever their number (one JSON array), for the consumer's batch that records a queue
 * batch's attempts; a row no longer being sent is left alone.
 */
export function sentStatement(db: D1Database, sent: readonly SentDelivery[], at: number): D1PreparedStatement {
  const rows = sent.map((s) => ({ id: s.id, wamid: s.messageId, fallback_code: s.fallbackCode }))
  return db.prepare(SENT_SQL).bind(JSON.stringify(rows), at)
}

/** sentStatement's SQL: ?1 the rows (JSON array of id, wamid, fallback_code), ?2 now. */
export const SENT_SQL = `UPDATE deliveries AS d SET status = 'sent', wamid = v.wamid, lease_until = NULL,
    error_code = NULL, error_detail = NULL, fallback_code = v.fallback_code,
    updated_at = ?2
  FROM (SELECT value ->> '$.id' AS id, value ->> '$.wamid' AS wamid,
          value ->> '$.fallback_code' AS fallback_code
        FROM json_each(?1)) AS v
  WHERE d.id = v.id AND d.status = 'sending'`

/**
 * Ends the claimed attempt with its error, releasing the lease: `status` 'sending' for a transient
 * failure (the row stays pending for the retry), 'failed' for a permanent one. A statement, for the
 * consumer's batch that records the attempts of a queue batch.
 */
export function attemptErrorStatement(
  db: D1Database,
  id: string,
  status: 'sending' | 'failed',
  errorCode: number | null,
  detail: string,
  at: number,
): D1PreparedStatement {
  return db
    .prepare(
      `UPDATE deliveries SET status = ?5, lease_until = NULL, error_code = ?2, error_detail = ?3, updated_at = ?4
       WHERE id = ?1 AND status = 'sending'`,
    )
    .bind(id, errorCode, detail, at, status)
}

/**
 * The queue gave up on the job (retries exhausted): the row fails, keeping the last attempt's error
 * code. Returns that code, or undefined when the row was no longer pending (nothing recorded).
 */
export async function recordExhausted(db: D1Database, id: string, at: number): Promise<number | null | undefined> {
  const row = await db
    .prepare(
      `UPDATE deliveries SET status = 'failed', lease_until = NULL, error_detail = 'retries_exhausted',
         updated_at = ?2
       WHERE id = ?1 AND ${CLAIMABLE}
       RETURNING error_code`,
    )
    .bind(id, at)
    .first<{ error_code: number | null }>()
  return row ? row.error_code : undefined
}

/** The message statuses a provider reports that a delivery records. */
export type WebhookStatus = 'sent' | 'delivered' | 'read' | 'failed'

/**
 * One status from a provider: its message id (wamid, Twilio SID), the status, the error code on
 * 'failed', and the shard its send recorded in the callback data (undefined when it recorded none).
 */
export interface StatusEvent {
  messageId: string
  status: WebhookStatus
  errorCode: number | null
  shard?: number
}

// Forward-only order of what providers report. 'failed' ranks below 'delivered' and 'read' because a
// message can fail on one of the user's devices and still reach another; rows not (yet) sent through
// the provider, or finished without it, rank above everything and are never touched by a status.
const RANK: Record<WebhookStatus, number> = { sent: 1, failed: 2, delivered: 3, read: 4 }
const ROW_RANK = `CASE status
  WHEN 'sent' THEN 1 WHEN 'failed' THEN 2 WHEN 'delivered' THEN 3 WHEN 'read' THEN 4 ELSE 99 END`

/**
 * SQL: the deliveries a provider status (?1 message id, ?2 channel, ?3 the status's rank) moves
 * forward. A lookup on deliveries_wamid, which holds only the rows that have a message id.
 */
export const STATUS_MOVES_SQL = `wamid = ?1 AND channel = ?2 AND ${ROW_RANK} < ?3`

/** A delivery a status moved forward. */
export interface StatusUpdatedRow {
  id: string
  project_id: string
  phone_id: string
  created_at: number
  expires_at: number
  attempts: number
  phone_number: string | null
}

/** A delivery's sealed fallback code as a 'failed' status found it, before the update cleared it. */
export interface FallbackCodeRow {
  id: string
  fallback_code: string
}

/**
 * Applies provider statuses of `channel` by message id in one D1 round trip. Each update only moves
 * a row up the rank, so duplicates and out-of-order arrivals are no-ops; unknown ids match nothing.
 * Any status past 'sent' is final for the fallback, so it clears the sealed fallback code; a 'failed'
 * status reads that code first, in the same batch. Returns, per event and in the events' order, the
 * rows it moved (none for a no-op) and the fallback codes of the rows a 'failed' moved.
 * `failedDetail` labels a failure the provider reported after accepting the message.
 */
export async function applyStatusUpdates(
  db: D1Database,
  channel: 'whatsapp' | 'sms',
  events: readonly StatusEvent[],
  at: number,
  failedDetail: string,
): Promise<{ event: StatusEvent; rows: StatusUpdatedRow[]; fallbackCodes: FallbackCodeRow[] }[]> {
  if (events.length === 0) return []
  const moves = STATUS_MOVES_SQL
  const read = db.prepare(`SELECT id, fallback_code FROM deliveries WHERE ${moves} AND fallback_code IS NOT NULL`)
  const update = db.prepare(
    `UPDATE deliveries SET status = ?4, updated_at = ?5,
       error_code = CASE WHEN ?4 = 'failed' THEN ?6 ELSE error_code END,
       error_detail = CASE WHEN ?4 = 'failed' THEN ?7 ELSE error_detail END,
       fallback_code = CASE WHEN ?4 = 'sent' THEN fallback_code END
     WHERE ${moves}
     RETURNING id, project_id, phone_id, created_at, expires_at, attempts,
       (SELECT phone_number FROM phones WHERE phones.id = deliveries.phone_id) AS phone_number`,
  )
  const batch = new Batch()
  const updates = events.map((event) => {
    const args = [event.messageId, channel, RANK[event.status]] as const
    return {
      event,
      fallbackCodes: event.status === 'failed' ? batch.add<FallbackCodeRow>(read.bind(...args)) : null,
      handle: batch.add<StatusUpdatedRow>(update.bind(...args, event.status, at, event.errorCode, failedDetail)),
    }
  })
  await batch.run(db)
  return updates.map(({ event, handle, fallbackCodes }) => ({
    event,
    rows: handle.rows(),
    fallbackCodes: fallbackCodes?.rows() ?? [],
  }))
}

/**
 * Clears the sealed fallback codes of deliveries whose code has expired (no status ever made them
 * final), at most `limit` of them: the retention run's share, so no sealed code outlives its use by
 * more than an hour.
 */
export function clearExpiredFallbackCodesStatement(db: D1Database, at: number, limit: number): D1PreparedStatement {
  return db
    .prepare(
      `UPDATE deliveries SET fallback_code = NULL WHERE rowid IN
         (SELECT rowid FROM deliveries WHERE fallback_code IS NOT NULL AND expires_at <= ?1 ORDER BY expires_at LIMIT ?2)`,
    )
    .bind(at, limit)
}

/**
 * Closes a still-queued delivery as failed with 'enqueue_failed': its code never reached the queue,
 * so a copy of the job that did arrive is dropped by the consumer instead of delivering it. A
 * statement, to run in the batch that also takes the send's limit events back.
 */
export function failUnsentStatement(db: D1Database, id: string, at: number): D1PreparedStatement {
  return db
    .prepare(
      `UPDATE deliveries SET status = 'failed', error_detail = 'enqueue_failed', lease_until = NULL, updated_at = ?2
       WHERE id = ?1 AND status = 'queued'`,
    )
    .bind(id, at)
}
