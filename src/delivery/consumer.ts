import { now } from '../clock'
import { openRotating } from '../crypto'
import { recordExhausted, recordFailed, recordRetry, recordSent } from '../db/deliveries'
import { findProject, isPaused, type Project } from '../db/projects'
import { projectEnv } from '../db/shard'
import { rotatingSecret } from '../env'
import { sendCountry } from '../limits'
import { errorName, logEvent } from '../log'
import { type MetricDimensions, withMetrics } from '../metrics'
import { parsePhone } from '../phone'
import { pauseRetrySeconds } from '../shards/pause'
import { claimDelivery } from './deliveries'
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
  // Every message is acked or retried on its own; one failure never fails its neighbours.
  await Promise.all(
    batch.messages.map((message) => {
      const job = parseJob(message)
      return job
        ? withMetrics(env, jobDimensions(job), () =>
            withProject(message, job, env, deps, (route) =>
              deliverOne(message, job, route, provider(job.channel, route.env, route.project.shard), deps),
            ),
          )
        : null
    }),
  )
}

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

/** A job's metrics dimensions: its project, channel, locale and destination country (never the number). */
function jobDimensions(job: DeliveryJob): Partial<MetricDimensions> {
  const phone = parsePhone(job.phone_number)
  return {
    project: job.project_id,
    channel: job.channel,
    locale: job.locale,
    country: phone ? sendCountry(phone) : '',
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

async function deliverOne(
  message: Message,
  job: DeliveryJob,
  route: JobRoute,
  provider: DeliveryProvider,
  deps: ConsumerDeps,
): Promise<void> {
  const { env, project } = route
  if (job.start_fallback) {
    // A fallback a status left to the consumer while the project was paused: the message itself
    // went out long ago. startFallback never throws and logs every outcome.
    await startFallback(env, project, { job, errorCode: job.start_fallback.error_code }, now())
    message.ack()
    return
  }
  // Log events are named by channel: whatsapp.sent, sms.failed, …
  const event = (what: string) => `${job.channel}.${what}`
  const ids = { delivery_id: job.id, phone_id: job.phone_id, provider: provider.name }
  try {
    const claim = await claimDelivery(env.DB, job.id, provider.name, now())
    if (claim.kind === 'busy') {
      logEvent('info', event('job_in_flight'), ids)
      message.retry({ delaySeconds: Math.ceil(claim.retryInMs / 1000) })
      return
    }
    if (claim.kind === 'dropped') logEvent('warn', event('job_dropped'), { ...ids, reason: claim.reason })
    if (claim.kind === 'done') logEvent('info', event('job_duplicate'), { ...ids, status: claim.status })
    if (claim.kind === 'missing') logEvent('warn', event('job_without_delivery'), ids)
    if (claim.kind !== 'claimed') {
      message.ack()
      return
    }

    let code: string
    try {
      code = (await openRotating(rotatingSecret(env, 'CODE_ENCRYPTION_KEY'), job.code, jobAad(job))).plaintext
    } catch (err) {
      // Wrong key or tampered job: no attempt can succeed.
      await recordFailed(env.DB, job.id, null, 'code_decrypt_failed', now())
      logEvent('error', event('failed'), {
        ...ids,
        detail: 'code_decrypt_failed',
        error: errorName(err),
        alert: true,
      })
      message.ack()
      return
    }

    const result = await provider.send({
      deliveryId: job.id,
      projectId: job.project_id,
      phoneNumber: job.phone_number,
      locale: job.locale,
      code,
      expiresAt: job.expires_at,
      autofillDomain: job.autofill_domain ?? null,
      shard: project.shard,
    })
    // latency_ms: from the code's issue to this attempt's answer (queue wait, retries, the provider's reply).
    const fields = { ...ids, attempts: claim.attempts, latency_ms: Math.max(0, now() - claim.createdAt) }
    if (result.kind === 'sent') {
      try {
        // A WhatsApp message that may still turn out undeliverable keeps what its SMS fallback needs.
        await recordSent(env.DB, job.id, result.messageId, now(), job.fallback ? fallbackCodeOf(job) : null)
      } catch (err) {
        // The message is out: a retry would send it again, so the failure to record is only logged.
        logEvent('error', event('sent_unrecorded'), {
          ...fields,
          message_id: result.messageId,
          error: errorName(err),
        })
      }
      logEvent('info', event('sent'), { ...fields, message_id: result.messageId })
      message.ack()
      // A status the provider reported at once takes the path of the same status from its webhook.
      if (result.reported && result.messageId) {
        const status = { messageId: result.messageId, ...result.reported, shard: project.shard }
        await applyProviderStatuses(route.worker, job.channel, [status], now())
      }
    } else if (result.kind === 'retry') {
      await recordRetry(env.DB, job.id, result.errorCode, result.detail, now())
      const delaySeconds = backoffSeconds(message.attempts, result.minDelaySeconds, deps.random)
      logEvent('warn', event('retry'), {
        ...fields,
        error_code: result.errorCode,
        detail: result.detail,
        delay_seconds: delaySeconds,
      })
      message.retry({ delaySeconds })
    } else {
      await recordFailed(env.DB, job.id, result.errorCode, result.detail, now())
      logEvent('error', event('failed'), {
        ...fields,
        error_code: result.errorCode,
        detail: result.detail,
        alert: result.alert,
      })
      message.ack()
      // Meta answered at once that the recipient cannot receive WhatsApp: the same code by SMS.
      if (result.fallback && job.fallback === 'sms') {
        await startFallback(env, project, { job, code, errorCode: result.errorCode }, now())
      }
    }
  } catch (err) {
    // D1 or another dependency failed: nothing was decided, so try again later.
    logEvent('error', event('consumer_error'), { ...ids, error: errorName(err) })
    message.retry({ delaySeconds: backoffSeconds(message.attempts, 0, deps.random) })
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
