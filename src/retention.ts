import { now } from './clock'
import { Batch, type Handle } from './db/batch'
import { clearExpiredFallbackCodesStatement } from './db/deliveries'
import { type PurgeTable, purgeStatement } from './db/purge'
import { shardEnv, shardNumbers } from './db/shard'
import { errorName, logEvent } from './log'
import { resealSigningKeys } from './sessions/keys'
import { RESEAL_BATCH_ROWS, resealSessions } from './sessions/sealing'

/**
 * Retention: the cron trigger (wrangler.toml `[triggers]`) runs purge(), which deletes what the
 * service no longer needs, oldest first, in bounded batches. Nothing else deletes these rows on a
 * schedule; request paths only sweep a few as they go. The same hourly run then seals anew what is
 * still sealed under an older key (resealAtRest).
 */

/** Rows each statement deletes per round: well inside D1's per-query time even without an index. */
export const PURGE_BATCH_ROWS = 1_000
/** Rounds per run; what is left after them waits for the next run (the trigger fires every hour). */
export const PURGE_MAX_ROUNDS = 10
/** How long a used or expired code's gate row outlives its expiry (KV's record lags up to a minute). */
export const CODE_GRACE_MS = 60 * 60_000
/** How long a console-provider outbox message is kept (local development; codes live at most 10 minutes). */
export const DEV_OUTBOX_MS = 24 * 60 * 60_000
/** DELIVERY_RETENTION_DAYS when unset or not a whole number from 1 to 3650. */
export const DEFAULT_DELIVERY_RETENTION_DAYS = 30

/** The cut-off times a table's rows are compared against. */
interface Cutoffs {
  now: number
  codes: number
  deliveries: number
  devOutbox: number
}

/**
 * One line per table: its rows older than `cutoff` are deleted (src/db/purge.ts says which rows
 * those are), at most a batch of rows per round, oldest first.
 */
export const PURGES: readonly { table: PurgeTable; cutoff: keyof Cutoffs }[] = [
  // By expiry: every code expires at most 10 minutes after issue, so this covers used codes as well.
  { table: 'otp_codes', cutoff: 'codes' },
  // By when the code was issued.
  { table: 'deliveries', cutoff: 'deliveries' },
  // An expired session's factors first: the cascade would delete them too, but D1 would then count
  // them as sessions.
  { table: 'session_factors', cutoff: 'now' },
  { table: 'sessions', cutoff: 'now' },
  // A counter row's expires_at is when its bucket has left every window that reads it.
  { table: 'limit_counters', cutoff: 'now' },
  // By when the message was stored.
  { table: 'dev_outbox', cutoff: 'devOutbox' },
]

/** DELIVERY_RETENTION_DAYS as a number of days (the default when unset or malformed). */
export function deliveryRetentionDays(env: Pick<Env, 'DELIVERY_RETENTION_DAYS'>): number {
  const raw = String(env.DELIVERY_RETENTION_DAYS ?? '').trim()
  const days = /^[0-9]{1,4}$/.test(raw) ? Number(raw) : NaN
  return days >= 1 && days <= 3_650 ? days : DEFAULT_DELIVERY_RETENTION_DAYS
}

/** Rows deleted per table by one run. */
export type PurgeCounts = Record<string, number>

/**
 * Deletes, per table of PURGES, up to `batchRows` rows per round in one D1 batch, and repeats while
 * some table still filled its batch, for at most `maxRounds` rounds. Logs the counts (never row
 * contents) and returns them.
 */
export async function purge(
  env: Env,
  at: number = now(),
  { batchRows = PURGE_BATCH_ROWS, maxRounds = PURGE_MAX_ROUNDS, shard = 0 } = {},
): Promise<PurgeCounts> {
  const cutoffs: Cutoffs = {
    now: at,
    codes: at - CODE_GRACE_MS,
    deliveries: at - deliveryRetentionDays(env) * 24 * 60 * 60_000,
    devOutbox: at - DEV_OUTBOX_MS,
  }
  const counts: PurgeCounts = Object.fromEntries([...PURGES.map(({ table }) => [table, 0]), ['fallback_codes', 0]])
  let rounds = 0
  let more = true
  while (more && rounds < maxRounds) {
    rounds += 1
    const batch = new Batch()
    const deletes = PURGES.map(({ table, cutoff }): { table: string; deleted: Handle } => ({
      table,
      deleted: batch.add(purgeStatement(env.DB, table, cutoffs[cutoff], batchRows)),
    }))
    // Not a table: the sealed fallback codes of WhatsApp deliveries whose code expired before any
    // status made them final. Cleared here, so none outlives its code by more than an hour.
    deletes.push({
      table: 'fallback_codes',
      deleted: batch.add(clearExpiredFallbackCodesStatement(env.DB, at, batchRows)),
    })
    await batch.run(env.DB)
    more = false
    for (const { table, deleted } of deletes) {
      counts[table] = (counts[table] ?? 0) + deleted.changes
      if (deleted.changes >= batchRows) more = true
    }
  }
  logEvent('info', 'retention.purged', { shard, ...counts, rounds, complete: !more })
  return counts
}

/**
 * Seals anew what is still sealed under SESSION_KEY_ENCRYPTION_KEY_PREVIOUS, or from before keys were
 * derived and session attributes sealed: the active signing keys, then the live sessions
 * (src/sessions/keys.ts, src/sessions/sealing.ts), of the shard `env.DB`. Logs counts only; `complete`
 * means nothing is left there: the previous secret may be removed once every shard's run says so.
 */
export async function resealAtRest(env: Env, at: number = now(), { shard = 0 } = {}): Promise<{ complete: boolean }> {
  const signingKeys = await resealSigningKeys(env, RESEAL_BATCH_ROWS)
  const { sessions, complete } = await resealSessions(env, at)
  const done = complete && signingKeys < RESEAL_BATCH_ROWS
  logEvent('info', 'session_seal.resealed', { shard, signing_keys: signingKeys, sessions, complete: done })
  return { complete: done }
}

/**
 * The Worker's `scheduled()` handler, once an hour: on every D1 shard, one after the other, the
 * retention purge, then the re-seal (each shard holds its projects' rows; src/db/shard.ts). Each runs
 * even if another fails; a failure is logged and alerted with its shard, and the first one rethrown.
 */
export async function handleScheduled(env: Env): Promise<void> {
  const jobs: [string, number, () => Promise<unknown>][] = shardNumbers(env).flatMap((shard) => {
    const shardEnvironment = shardEnv(env, shard)
    return [
      ['retention.failed', shard, () => purge(shardEnvironment, now(), { shard })],
      ['session_seal.failed', shard, () => resealAtRest(shardEnvironment, now(), { shard })],
    ] as [string, number, () => Promise<unknown>][]
  })
  let failure: unknown = null
  for (const [event, shard, job] of jobs) {
    try {
      await job()
    } catch (err) {
      logEvent('error', event, { shard, error: errorName(err), alert: true })
      failure ??= err
    }
  }
  if (failure !== null) throw failure
}
