/**
 * The deliveries table (schema.sql): one row per delivery job, id = code_id. Queues deliver at least
 * once, so every step is a conditional UPDATE that only moves a row forward; a duplicate or late
 * copy of a job, or of a webhook, finds nothing to update.
 */

/** deliveries.status; the CHECK constraint in schema.sql lists the same values. */
export type DeliveryStatus = 'queued' | 'sending' | 'sent' | 'delivered' | 'read' | 'failed' | 'expired'

/**
 * How long a consumer holds a job while it talks to the provider. Longer than the provider call's
 * timeout, so a lease that has run out means its holder died; then the job may be claimed again.
 */
export const LEASE_MS = 30_000

/** What claiming a job found, and so what the consumer does with the message. */
export type Claim =
  /** This consumer holds the job and may send it (`attempts` includes this one; `createdAt` = code issued). */
  | { kind: 'claimed'; attempts: number; createdAt: number }
  /** Already sent, or finished for good: nothing to do. */
  | { kind: 'done'; status: DeliveryStatus }
  /** Another copy is being sent right now; look again once its lease has run out. */
  | { kind: 'busy'; retryInMs: number }
  /** The code can no longer be used (expired, or replaced by a newer code): recorded 'expired'. */
  | { kind: 'dropped'; reason: 'code_expired' | 'code_superseded' }
  /** No such delivery (the job outlived its row). */
  | { kind: 'missing' }

// A pending row that nobody holds.
const CLAIMABLE = `status IN ('queued', 'sending') AND (lease_until IS NULL OR lease_until <= ?2)`

/**
 * Claims a job for one send attempt. The claim requires the code to be unexpired and still the
 * phone's current code (otp_codes.code_id): a job that waited in the queue while the user asked for
 * a new code would only deliver a code that can no longer log in.
 */
export async function claimDelivery(db: D1Database, id: string, provider: string, at: number): Promise<Claim> {
  const claimed = await db
    .prepare(
      `UPDATE deliveries SET status = 'sending', attempts = attempts + 1, provider = ?3,
         lease_until = ?2 + ?4,
         updated_at = ?2
       WHERE id = ?1 AND ${CLAIMABLE} AND expires_at > ?2
         AND id = (SELECT code_id FROM otp_codes WHERE otp_codes.phone_id = deliveries.phone_id)
       RETURNING attempts, created_at`,
    )
    .bind(id, at, provider, LEASE_MS)
    .first<{ attempts: number; created_at: number }>()
  if (claimed) return { kind: 'claimed', attempts: claimed.attempts, createdAt: claimed.created_at }

  // Free and pending but not claimable: only a dead code explains that, so the job is dropped.
  const dropped = await db
    .prepare(
      `UPDATE deliveries SET status = 'expired', lease_until = NULL, updated_at = ?2,
         error_detail = CASE WHEN expires_at <= ?2 THEN 'code_expired' ELSE 'code_superseded' END
       WHERE id = ?1 AND ${CLAIMABLE}
       RETURNING error_detail`,
    )
    .bind(id, at)
    .first<{ error_detail: 'code_expired' | 'code_superseded' }>()
  if (dropped) return { kind: 'dropped', reason: dropped.error_detail }

  const row = await db
    .prepare('SELECT status, lease_until FROM deliveries WHERE id = ?1')
    .bind(id)
    .first<{ status: DeliveryStatus; lease_until: number | null }>()
  if (!row) return { kind: 'missing' }
  if (row.status === 'queued' || row.status === 'sending') {
    return { kind: 'busy', retryInMs: Math.max(1_000, (row.lease_until ?? at) - at) }
  }
  return { kind: 'done', status: row.status }
}

/** The provider accepted the message. Clears the last attempt's error: it no longer describes the row. */
export async function recordSent(db: D1Database, id: string, wamid: string | null, at: number): Promise<void> {
  await db
    .prepare(
      `UPDATE deliveries SET status = 'sent', wamid = ?2, lease_until = NULL,
         error_code = NULL, error_detail = NULL,
         updated_at = ?3
       WHERE id = ?1 AND status = 'sending'`,
    )
    .bind(id, wamid, at)
    .run()
}

/** A transient failure: the row stays pending and the lease is released for the retry. */
export function recordRetry(db: D1Database, id: string, errorCode: number | null, detail: string, at: number) {
  return recordAttemptError(db, id, 'sending', errorCode, detail, at)
}

/** A permanent failure of this message. */
export function recordFailed(db: D1Database, id: string, errorCode: number | null, detail: string, at: number) {
  return recordAttemptError(db, id, 'failed', errorCode, detail, at)
}

/** Ends the claimed attempt with its error, releasing the lease; `status` is where the row goes. */
async function recordAttemptError(
  db: D1Database,
  id: string,
  status: 'sending' | 'failed',
  errorCode: number | null,
  detail: string,
  at: number,
): Promise<void> {
  await db
    .prepare(
      `UPDATE deliveries SET status = ?5, lease_until = NULL, error_code = ?2, error_detail = ?3, updated_at = ?4
       WHERE id = ?1 AND status = 'sending'`,
    )
    .bind(id, errorCode, detail, at, status)
    .run()
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

/** The message statuses Meta reports that a delivery records. */
export type WebhookStatus = 'sent' | 'delivered' | 'read' | 'failed'

/** One status from a webhook: Meta's message id, the status, and the error code on 'failed'. */
export interface StatusEvent {
  wamid: string
  status: WebhookStatus
  errorCode: number | null
}

// Forward-only order of what Meta reports. 'failed' ranks below 'delivered' and 'read' because a
// message can fail on one of the user's devices and still reach another; rows not (yet) sent through
// Meta, or finished without it, rank above everything and are never touched by a webhook.
const RANK: Record<WebhookStatus, number> = { sent: 1, failed: 2, delivered: 3, read: 4 }
const ROW_RANK = `CASE status
  WHEN 'sent' THEN 1 WHEN 'failed' THEN 2 WHEN 'delivered' THEN 3 WHEN 'read' THEN 4 ELSE 99 END`

/** A status that moved a delivery forward, with what its log line and metric report. */
export interface AppliedStatus extends StatusEvent {
  deliveryId: string
  projectId: string
  /** When the code was issued (deliveries.created_at): the delivery latency is measured from it. */
  createdAt: number
  attempts: number
  /** The recipient (E.164), only to derive the country; never logged or counted. */
  phoneNumber: string | null
}

/**
 * Applies status webhooks by wamid in one D1 round trip. Each update only moves a row up the rank,
 * so duplicates and out-of-order arrivals are no-ops; unknown wamids match nothing. Returns the
 * statuses that changed a row.
 */
export async function applyStatuses(
  db: D1Database,
  events: readonly StatusEvent[],
  at: number,
): Promise<AppliedStatus[]> {
  if (events.length === 0) return []
  const statement = db.prepare(
    `UPDATE deliveries SET status = ?2, updated_at = ?5,
       error_code = CASE WHEN ?2 = 'failed' THEN ?3 ELSE error_code END,
       error_detail = CASE WHEN ?2 = 'failed' THEN 'meta_status_failed' ELSE error_detail END
     WHERE wamid = ?1 AND ${ROW_RANK} < ?4
     RETURNING id, project_id, created_at, attempts,
       (SELECT phone_number FROM phones WHERE phones.id = deliveries.phone_id) AS phone_number`,
  )
  const results = await db.batch<{
    id: string
    project_id: string
    created_at: number
    attempts: number
    phone_number: string | null
  }>(events.map((e) => statement.bind(e.wamid, e.status, e.errorCode, RANK[e.status], at)))
  return events.flatMap((event, i) =>
    (results[i]?.results ?? []).map((row) => ({
      ...event,
      deliveryId: row.id,
      projectId: row.project_id,
      createdAt: row.created_at,
      attempts: row.attempts,
      phoneNumber: row.phone_number,
    })),
  )
}
