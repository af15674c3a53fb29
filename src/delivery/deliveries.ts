import { Batch } from '../db/batch'
import {
  applyStatusUpdates,
  type DeliveryStatus,
  deliveryState,
  expireDelivery,
  type LeasedRow,
  leaseStatement,
  type StatusEvent,
} from '../db/deliveries'

export type { DeliveryStatus, StatusEvent, WebhookStatus } from '../db/deliveries'

/**
 * A delivery job's life (rows in the deliveries table, src/db/deliveries.ts): claimed by one
 * consumer at a time under a lease, then recorded sent, retried, failed or dropped; provider
 * statuses (webhooks) move a sent message forward.
 */

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

/**
 * Claims jobs for one send attempt each, in one D1 batch (one transaction for a whole queue batch)
 * of one lease statement per provider, returning their claims in order. A claim requires the code to
 * be unexpired and still the phone's current code (otp_codes.code_id): a job that waited in the
 * queue while the user asked for a new code would only deliver a code that can no longer log in. A
 * job not leased is looked at on its own (unclaimed), which is the rare path. So is a second copy of
 * a job in the same queue batch (queues deliver at least once): only its first copy holds the lease,
 * and the other finds it held.
 */
export async function claimDeliveries(
  db: D1Database,
  jobs: readonly { id: string; provider: string }[],
  at: number,
): Promise<Claim[]> {
  const idsByProvider = new Map<string, Set<string>>()
  for (const job of jobs) idsByProvider.set(job.provider, (idsByProvider.get(job.provider) ?? new Set()).add(job.id))
  const batch = new Batch()
  const leases = [...idsByProvider].map(([provider, ids]) =>
    batch.add<LeasedRow>(leaseStatement(db, [...ids], provider, at, LEASE_MS)),
  )
  await batch.run(db)
  const leased = new Map(leases.flatMap((lease) => lease.rows().map((row) => [row.id, row] as const)))
  return Promise.all(
    jobs.map((job) => {
      const claimed = leased.get(job.id)
      // Taken by this copy: the next copy of the same job, if any, finds the lease held.
      leased.delete(job.id)
      if (claimed) return { kind: 'claimed' as const, attempts: claimed.attempts, createdAt: claimed.created_at }
      return unclaimed(db, job.id, at)
    }),
  )
}

/** Why a job could not be leased: its code is dead (dropped), it is held or finished, or it is gone. */
async function unclaimed(db: D1Database, id: string, at: number): Promise<Claim> {
  // Free and pending but not claimable: only a dead code explains that, so the job is dropped.
  const dropped = await expireDelivery(db, id, at)
  if (dropped) return { kind: 'dropped', reason: dropped }

  const row = await deliveryState(db, id)
  if (!row) return { kind: 'missing' }
  if (row.status === 'queued' || row.status === 'sending') {
    return { kind: 'busy', retryInMs: Math.max(1_000, (row.lease_until ?? at) - at) }
  }
  return { kind: 'done', status: row.status }
}

/** A status that moved a delivery forward, with what its log line and metric report. */
export interface AppliedStatus extends StatusEvent {
  deliveryId: string
  projectId: string
  phoneId: string
  /** When the code was issued (deliveries.created_at): the delivery latency is measured from it. */
  createdAt: number
  expiresAt: number
  attempts: number
  /** The recipient (E.164), only to derive the country; never logged or counted. */
  phoneNumber: string | null
  /** On a 'failed' status: the sealed code the delivery kept for an SMS fallback, if any. */
  fallbackCode: string | null
}

/**
 * Applies provider statuses of one channel by message id in one D1 round trip. Each update only
 * moves a delivery forward, so duplicates and out-of-order arrivals are no-ops; unknown ids match
 * nothing. Returns the statuses that changed a row.
 */
export async function applyStatuses(
  db: D1Database,
  channel: 'whatsapp' | 'sms',
  events: readonly StatusEvent[],
  at: number,
  failedDetail: string,
): Promise<AppliedStatus[]> {
  const updates = await applyStatusUpdates(db, channel, events, at, failedDetail)
  return updates.flatMap(({ event, rows, fallbackCodes }) =>
    rows.map((row) => ({
      ...event,
      deliveryId: row.id,
      projectId: row.project_id,
      phoneId: row.phone_id,
      createdAt: row.created_at,
      expiresAt: row.expires_at,
      attempts: row.attempts,
      phoneNumber: row.phone_number,
      fallbackCode: fallbackCodes.find((f) => f.id === row.id)?.fallback_code ?? null,
    })),
  )
}
