import { now } from '../clock'
import { openRotating } from '../crypto'
import { Batch } from '../db/batch'
import { attemptErrorStatement, recordExhausted, type SentDelivery, sentStatement } from '../db/deliveries'
import { type OutboxMessage, outboxMessagesStatement } from '../db/dev-outbox'
import { findProject, isPaused, type Project } from '../db/projects'
import { projectEnv } from '../db/shard'
import { rotatingSecret } from '../env'
import { storedNumberCountry } from '../limits'
import { errorName, logEvent, recordEvent } from '../log'
import { type MetricDimensions, withMetrics } from '../metrics'
import { pauseRetrySeconds } from '../shards/pause'
import { type Claim, claimDeliveries } from './deliveries'
import { fallbackCodeOf, startFallback } from './fallback'
import { type Channel, type DeliveryJob, DeliveryJobSchema, jobAad } from './job'
import type { DeliveryProvider } from './provider'
import { selectProvider } from './select'
import { applyProviderStatuses } from './statuses'

/** The local (top-level wrangler.toml) queue names; queueRole() also knows each environment's. */
export const DELIVERY_QUEUE = 'whatsapp-otp-delivery'
export const DEAD_LETTER_QUEUE = 'whatsapp-otp-delivery-dlq'

const BACKOFF_BASE_SECONDS = 2
const BACKOFF_CAP_SECONDS = 60

/** What the consumer takes from the outside world; tests may replace either. */
export interface ConsumerDeps {
  fetch: typeof fetch
  /** Jitter source in [0, 1). */
  random: () => number
}

const defaultDeps: ConsumerDeps = {
  // Looked up on each call so a spy installed on globalThis.fetch after import is honoured.
  fetch: (input, init) => fetch(input, init),
  random: () => Math.random(),
}

/**
 * Exponential backoff with jitter for the `attempt`-th delivery of a message (1-based): 2, 4, 8 …
 * capped at 60 s, never below `minSeconds`, then stretched by up to half again at random so that
 * jobs rate-limited together do not come back together.
 */
export function backoffSeconds(attempt: number, minSeconds = 0, random: () => number = Math.random): number {
  const exponential = Math.min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** Math.max(0, attempt - 1))
  const base = Math.max(minSeconds, exponential)
  return Math.ceil(base * (1 + random() / 2))
}

/**
 * A queue's role by its name: DELIVERY_QUEUE and DEAD_LETTER_QUEUE locally, and the same names with
 * the wrangler environment after `whatsapp-otp` in a deployed environment
 * (whatsapp-otp-production-delivery, whatsapp-otp-production-delivery-dlq).
 */
export function queueRole(name: string): 'delivery' | 'dead_letter' | null {
  const match = /^whatsapp-otp(?:-[a-z0-9]+)?-delivery(-dlq)?$/.exec(name)
  if (!match) return null
  return match[1] ? 'dead_letter' : 'delivery'
}

/** The Worker's `queue()` handler: delivery jobs of both channels and their dead letters. */
export async function handleQueue(batch: MessageBatch, env: Env, deps: ConsumerDeps = defaultDeps): Promise<void> {
  const role = queueRole(batch.queue)
  if (role === 'delivery') return deliverBatch(batch, env, deps)
  if (role === 'dead_letter') return recordDeadLetters(batch, env)
  // A queue wired to this Worker that it does not know: keep the messages (they reach that
  // queue's dead-letter queue) and say so loudly.
  logEvent('error', 'whatsapp.unknown_queue', { queue: batch.queue, alert: true })
  batch.retryAll()
}

/** One job of a queue batch on its way: its message, its project and shard, its provider, its metrics scope. */
interface Delivery {
  message: Message
  job: DeliveryJob
  route: JobRoute
  provider: DeliveryProvider
  dims: Partial<MetricDimensions>
}

/**
 * What an attempt leaves to record in the batch's one record transaction, and to do after. A sent
 * message is recorded with the other sent messages of the batch, in one statement (and its outbox
 * entry with theirs); an attempt that failed has a statement of its own, which is the rare path.
 */
interface Attempted {
  record: { sent: SentDelivery; outbox: OutboxMessage | null } | { failed: D1PreparedStatement }
  /** Runs once the record batch ran; `recordError` is its failure, if it failed. */
  finish: (recordError: unknown) => Promise<void> | void
}

async function deliverBatch(batch: MessageBatch, env: Env, deps: ConsumerDeps): Promise<void> {
  // Each channel's provider is set up once per batch and shard, and only if the batch has a job for it.
  const providers = new Map<string, DeliveryProvider>()
  const provider = (channel: Channel, shardEnv: Env, shard: number) => {
    let p = providers.get(`${channel}:${shard}`)
    if (!p) {
      p = withMetrics(env, { channel }, () => selectProvider(shardEnv, channel, deps.fetch))
      providers.set(`${channel}:${shard}`, p)
    }
    return p
  }
  // The jobs of one database (a project's shard) are leased in one D1 transaction and their attempts
  // recorded in one more: two transactions per queue batch and shard, whatever its size. (A job's
  // project comes from the directory through the isolate's cache: no transaction when it is warm.)
  const byDatabase = new Map<D1Database, Delivery[]>()
  await Promise.all(
    batch.messages.map(async (message) => {
      const job = parseJob(message)
      if (!job) return
      const dims = jobDimensions(job)
      await withMetrics(env, dims, () =>
        withProject(message, job, env, deps, async (route) => {
          if (job.start_fallback) {
            // A fallback a status left to the consumer while the project was paused: the message
            // itself went out long ago. startFallback never throws and logs every outcome.
            await startFallback(route.env, route.project, { job, errorCode: job.start_fallback.error_code }, now())
            message.ack()
            return
          }
          const delivery: Delivery = {
            message,
            job,
            route,
            provider: provider(job.channel, route.env, route.project.shard),
            dims,
          }
          const ofDatabase = byDatabase.get(route.env.DB)
          if (ofDatabase) ofDatabase.push(delivery)
          else byDatabase.set(route.env.DB, [delivery])
        }),
      )
    }),
  )
  await Promise.all([...byDatabase].map(([db, deliveries]) => deliverFrom(db, deliveries, deps)))
}

/** Runs `fn` in the delivery's metrics scope. */
const scoped = <T>(d: Delivery, fn: () => T): T => withMetrics(d.route.env, d.dims, fn)

/**
 * Delivers the jobs of one database: one batch leases them all, each claimed job is sent (at the
 * same time), one batch records every attempt, then each message is acked or retried on its own. A
 * failure of one job never fails its neighbours; a failed lease or record batch is a D1 failure,
 * which every job of the batch meets alike.
 */
async function deliverFrom(db: D1Database, deliveries: Delivery[], deps: ConsumerDeps): Promise<void> {
  let claims: Claim[]
  try {
    claims = await claimDeliveries(
      db,
      deliveries.map((d) => ({ id: d.job.id, provider: d.provider.name })),
      now(),
    )
  } catch (err) {
    for (const d of deliveries) scoped(d, () => consumerError(d, err, deps))
    return
  }
  const attempts = await Promise.all(
    deliveries.map((d, i) => scoped(d, () => attemptOne(d, claims[i] ?? { kind: 'missing' }, deps))),
  )
  const record = new Batch()
  const sent: SentDelivery[] = []
  const outbox: OutboxMessage[] = []
  for (const attempt of attempts) {
    if (!attempt) continue
    if ('failed' in attempt.record) record.add(attempt.record.failed)
    else {
      sent.push(attempt.record.sent)
      if (attempt.record.outbox) outbox.push(attempt.record.outbox)
    }
  }
  if (sent.length > 0) record.add(sentStatement(db, sent, now()))
  if (outbox.length > 0) record.add(outboxMessagesStatement(db, outbox))
  let recordError: unknown = null
  try {
    await record.run(db)
  } catch (err) {
    recordError = err ?? new Error('recording the attempts failed')
  }
  await Promise.all(
    attempts.map(async (attempt, i) => {
      const d = deliveries[i]
      if (!attempt || !d) return
      await scoped(d, async () => {
        try {
          await attempt.finish(recordError)
        } catch (err) {
          consumerError(d, err, deps)
        }
      })
    }),
  )
}

/** D1 or another dependency failed: nothing was decided, so try again later. */
function consumerError(d: Delivery, err: unknown, deps: ConsumerDeps): void {
  logEvent('error', `${d.job.channel}.consumer_error`, { ...deliveryIds(d), error: errorName(err) })
  d.message.retry({ delaySeconds: backoffSeconds(d.message.attempts, 0, deps.random) })
}

const deliveryIds = (d: Delivery) => ({ delivery_id: d.job.id, phone_id: d.job.phone_id, provider: d.provider.name })

/** Where a job is handled: its project's directory record, and `env` with DB its project's shard. */
interface JobRoute {
  project: Project
  env: Env
  /** The Worker's own bindings (the directory and every shard), for provider statuses. */
  worker: Env
}

/**
 * Runs `handle` with the job's project and shard (its directory record, read through the isolate's
 * cache). A job of a project paused by a move between shards waits in the queue until the pause is
 * over; a job whose project has no record (it cannot be placed on a shard) is dropped, loudly.
 */
async function withProject(
  message: Message,
  job: DeliveryJob,
  env: Env,
  deps: ConsumerDeps,
  handle: (route: JobRoute) => Promise<void>,
): Promise<void> {
  let project: Project | null
  try {
    project = await findProject(env.DB, job.project_id, now())
  } catch (err) {
    logEvent('error', `${job.channel}.consumer_error`, { delivery_id: job.id, error: errorName(err) })
    message.retry({ delaySeconds: backoffSeconds(message.attempts, 0, deps.random) })
    return
  }
  if (!project) {
    logEvent('error', `${job.channel}.job_without_project`, { delivery_id: job.id, alert: true })
    message.ack()
    return
  }
  const at = now()
  if (isPaused(project, at)) {
    // At least until the pause is expected to end, and longer at each attempt, so that a final copy
    // slower than expected does not spend the job's retries.
    const delaySeconds = backoffSeconds(message.attempts, pauseRetrySeconds(project, at), deps.random)
    logEvent('info', `${job.channel}.job_paused`, { delivery_id: job.id, delay_seconds: delaySeconds })
    message.retry({ delaySeconds })
    return
  }
  let projectEnvironment: Env
  try {
    projectEnvironment = projectEnv(env, project)
  } catch {
    // No binding for the project's shard (logged as an alert): nothing can be done here until there is.
    message.retry({ delaySeconds: backoffSeconds(message.attempts, 0, deps.random) })
    return
  }
  await handle({ project, env: projectEnvironment, worker: env })
}

/**
 * A job's metrics dimensions: its project, channel, locale and destination country (never the
 * number). The country comes with the job; only a job queued before it did has its number parsed.
 */
function jobDimensions(job: DeliveryJob): Partial<MetricDimensions> {
  return {
    project: job.project_id,
    channel: job.channel,
    locale: job.locale,
    country: storedNumberCountry(job.phone_number, job.country) ?? '',
  }
}

function parseJob(message: Message): DeliveryJob | null {
  const parsed = DeliveryJobSchema.safeParse(message.body)
  if (parsed.success) return parsed.data
  // Not a job this version understands: retrying cannot fix it.
  logEvent('error', 'whatsapp.job_invalid', { message_id: message.id })
  message.ack()
  return null
}

/**
 * One job's attempt after the lease: a job not claimed is acked or retried at once; a claimed one is
 * decrypted and sent, and what to record and do next is returned (null: nothing left to do).
 */
async function attemptOne(d: Delivery, claim: Claim, deps: ConsumerDeps): Promise<Attempted | null> {
  const { message, job, provider, route } = d
  const { env } = route
  // Log events are named by channel: whatsapp.sent, sms.failed, …
  const event = (what: string) => `${job.channel}.${what}`
  const ids = deliveryIds(d)
  try {
    if (claim.kind === 'busy') {
      logEvent('info', event('job_in_flight'), ids)
      message.retry({ delaySeconds: Math.ceil(claim.retryInMs / 1000) })
      return null
    }
    if (claim.kind === 'dropped') logEvent('warn', event('job_dropped'), { ...ids, reason: claim.reason })
    if (claim.kind === 'done') logEvent('info', event('job_duplicate'), { ...ids, status: claim.status })
    if (claim.kind === 'missing') logEvent('warn', event('job_without_delivery'), ids)
    if (claim.kind !== 'claimed') {
      message.ack()
      return null
    }

    let code: string
    try {
      code = (await openRotating(rotatingSecret(env, 'CODE_ENCRYPTION_KEY'), job.code, jobAad(job))).plaintext
    } catch (err) {
      // Wrong key or tampered job: no attempt can succeed.
      return {
        record: { failed: attemptErrorStatement(env.DB, job.id, 'failed', null, 'code_decrypt_failed', now()) },
        finish: (recordError) => {
          if (recordError) return consumerError(d, recordError, deps)
          logEvent('error', event('failed'), {
            ...ids,
            detail: 'code_decrypt_failed',
            error: errorName(err),
            alert: true,
          })
          message.ack()
        },
      }
    }

    const result = await provider.send({
      deliveryId: job.id,
      projectId: job.project_id,
      phoneNumber: job.phone_number,
      locale: job.locale,
      code,
      expiresAt: job.expires_at,
      autofillDomain: job.autofill_domain ?? null,
      shard: route.project.shard,
    })
    // latency_ms: from the code's issue to this attempt's answer (queue wait, retries, the provider's reply).
    const fields = { ...ids, attempts: claim.attempts, latency_ms: Math.max(0, now() - claim.createdAt) }
    if (result.kind === 'sent') {
      // The delivery recorded sent and, from the console provider, its outbox entry. A WhatsApp
      // message that may still turn out undeliverable keeps what its SMS fallback needs.
      const sent = { id: job.id, messageId: result.messageId, fallbackCode: job.fallback ? fallbackCodeOf(job) : null }
      return {
        record: { sent, outbox: result.outbox ?? null },
        finish: async (recordError) => {
          // The message is out: a retry would send it again, so a failure to record is only logged.
          if (recordError) {
            logEvent('error', event('sent_unrecorded'), {
              ...fields,
              message_id: result.messageId,
              error: errorName(recordError),
            })
          }
          recordEvent(event('sent'), fields)
          message.ack()
          // A status the provider reported at once takes the path of the same status from its webhook.
          if (result.reported && result.messageId) {
            const status = { messageId: result.messageId, ...result.reported, shard: route.project.shard }
            await applyProviderStatuses(route.worker, job.channel, [status], now())
          }
        },
      }
    }
    if (result.kind === 'retry') {
      return {
        record: { failed: attemptErrorStatement(env.DB, job.id, 'sending', result.errorCode, result.detail, now()) },
        finish: (recordError) => {
          if (recordError) return consumerError(d, recordError, deps)
          const delaySeconds = backoffSeconds(message.attempts, result.minDelaySeconds, deps.random)
          logEvent('warn', event('retry'), {
            ...fields,
            error_code: result.errorCode,
            detail: result.detail,
            delay_seconds: delaySeconds,
          })
          message.retry({ delaySeconds })
        },
      }
    }
    return {
      record: { failed: attemptErrorStatement(env.DB, job.id, 'failed', result.errorCode, result.detail, now()) },
      finish: async (recordError) => {
        if (recordError) return consumerError(d, recordError, deps)
        logEvent('error', event('failed'), {
          ...fields,
          error_code: result.errorCode,
          detail: result.detail,
          alert: result.alert,
        })
        message.ack()
        // Meta answered at once that the recipient cannot receive WhatsApp: the same code by SMS.
        if (result.fallback && job.fallback === 'sms') {
          await startFallback(env, route.project, { job, code, errorCode: result.errorCode }, now())
        }
      },
    }
  } catch (err) {
    // D1 or another dependency failed: nothing was decided, so try again later.
    consumerError(d, err, deps)
    return null
  }
}

/**
 * Dead letters: jobs the delivery queue retried `max_retries` times. The delivery is recorded as
 * failed (keeping the last error code) unless it finished meanwhile; then the message is acked.
 */
async function recordDeadLetters(batch: MessageBatch, env: Env): Promise<void> {
  await Promise.all(
    batch.messages.map(async (message) => {
      const job = parseJob(message)
      if (!job) return
      await withMetrics(env, jobDimensions(job), () =>
        withProject(message, job, env, defaultDeps, (route) => recordDeadLetter(message, job, route.env)),
      )
    }),
  )
}

async function recordDeadLetter(message: Message, job: DeliveryJob, env: Env): Promise<void> {
  try {
    const errorCode = await recordExhausted(env.DB, job.id, now())
    // A job that gave up unsent needs a human: the provider kept failing it (rate limits past the
    // code's life, an outage) or the consumer kept crashing.
    logEvent(errorCode === undefined ? 'info' : 'error', `${job.channel}.dead_letter`, {
      delivery_id: job.id,
      phone_id: job.phone_id,
      recorded: errorCode !== undefined,
      error_code: errorCode ?? null,
      alert: errorCode !== undefined,
    })
    message.ack()
  } catch (err) {
    logEvent('error', `${job.channel}.dead_letter_error`, { delivery_id: job.id, error: errorName(err), alert: true })
    message.retry()
  }
}
