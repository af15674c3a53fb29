import { now } from '../clock'
import { openRotating } from '../crypto'
import { recordExhausted, recordFailed, recordRetry, recordSent } from '../db/deliveries'
import { projectEnv } from '../db/shard'
import { rotatingSecret } from '../env'
import { sendCountry } from '../limits'
import { errorName, logEvent } from '../log'
import { type MetricDimensions, withMetrics } from '../metrics'
import { parsePhone } from '../phone'
import { consoleProvider } from './console'
import { claimDelivery } from './deliveries'
import { jobAad, type WhatsAppJob, WhatsAppJobSchema } from './job'
import { metaConfig, metaProvider } from './meta'
import { unconfiguredProvider, type WhatsAppProvider } from './provider'

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

/** The provider chosen by WHATSAPP_PROVIDER; only the exact value "console" selects the console. */
export function selectProvider(env: Env, deps: ConsumerDeps = defaultDeps): WhatsAppProvider {
  if (env.WHATSAPP_PROVIDER === 'meta') {
    const checked = metaConfig(env)
    if (checked.ok) return metaProvider(checked.config, deps.fetch)
    logEvent('error', 'whatsapp.provider_not_configured', {
      provider: 'meta',
      reason: checked.reason,
      alert: true,
    })
    return unconfiguredProvider('meta')
  }
  if (env.WHATSAPP_PROVIDER === 'console') return consoleProvider(env.DB)
  logEvent('error', 'whatsapp.provider_not_configured', {
    reason: 'WHATSAPP_PROVIDER must be "meta" or "console"',
    alert: true,
  })
  return unconfiguredProvider('unknown')
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

/** The Worker's `queue()` handler: delivery jobs and their dead letters. */
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
  const provider = withMetrics(env, {}, () => selectProvider(env, deps))
  // Every message is acked or retried on its own; one failure never fails its neighbours.
  await Promise.all(
    batch.messages.map((message) => {
      const job = parseJob(message)
      return job
        ? withMetrics(env, jobDimensions(job), () =>
            deliverOne(message, job, projectEnv(env, job.project_id), provider, deps),
          )
        : null
    }),
  )
}

/** A job's metrics dimensions: its project, locale and destination country (never the number). */
function jobDimensions(job: WhatsAppJob): Partial<MetricDimensions> {
  const phone = parsePhone(job.phone_number)
  return { project: job.project_id, locale: job.locale, country: phone ? sendCountry(phone) : '' }
}

function parseJob(message: Message): WhatsAppJob | null {
  const parsed = WhatsAppJobSchema.safeParse(message.body)
  if (parsed.success) return parsed.data
  // Not a job this version understands: retrying cannot fix it.
  logEvent('error', 'whatsapp.job_invalid', { message_id: message.id })
  message.ack()
  return null
}

async function deliverOne(
  message: Message,
  job: WhatsAppJob,
  env: Env,
  provider: WhatsAppProvider,
  deps: ConsumerDeps,
): Promise<void> {
  const ids = { delivery_id: job.id, phone_id: job.phone_id, provider: provider.name }
  try {
    const claim = await claimDelivery(env.DB, job.id, provider.name, now())
    if (claim.kind === 'busy') {
      logEvent('info', 'whatsapp.job_in_flight', ids)
      message.retry({ delaySeconds: Math.ceil(claim.retryInMs / 1000) })
      return
    }
    if (claim.kind === 'dropped') logEvent('warn', 'whatsapp.job_dropped', { ...ids, reason: claim.reason })
    if (claim.kind === 'done') logEvent('info', 'whatsapp.job_duplicate', { ...ids, status: claim.status })
    if (claim.kind === 'missing') logEvent('warn', 'whatsapp.job_without_delivery', ids)
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
      logEvent('error', 'whatsapp.failed', {
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
    })
    // latency_ms: from the code's issue to this attempt's answer (queue wait, retries, Meta's reply).
    const fields = { ...ids, attempts: claim.attempts, latency_ms: Math.max(0, now() - claim.createdAt) }
    if (result.kind === 'sent') {
      try {
        await recordSent(env.DB, job.id, result.wamid, now())
      } catch (err) {
        // The message is out: a retry would send it again, so the failure to record is only logged.
        logEvent('error', 'whatsapp.sent_unrecorded', {
          ...fields,
          wamid: result.wamid,
          error: errorName(err),
        })
      }
      logEvent('info', 'whatsapp.sent', { ...fields, wamid: result.wamid })
      message.ack()
    } else if (result.kind === 'retry') {
      await recordRetry(env.DB, job.id, result.errorCode, result.detail, now())
      const delaySeconds = backoffSeconds(message.attempts, result.minDelaySeconds, deps.random)
      logEvent('warn', 'whatsapp.retry', {
        ...fields,
        error_code: result.errorCode,
        detail: result.detail,
        delay_seconds: delaySeconds,
      })
      message.retry({ delaySeconds })
    } else {
      await recordFailed(env.DB, job.id, result.errorCode, result.detail, now())
      logEvent('error', 'whatsapp.failed', {
        ...fields,
        error_code: result.errorCode,
        detail: result.detail,
        alert: result.alert,
      })
      message.ack()
    }
  } catch (err) {
    // D1 or another dependency failed: nothing was decided, so try again later.
    logEvent('error', 'whatsapp.consumer_error', { ...ids, error: errorName(err) })
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
      await withMetrics(env, jobDimensions(job), () => recordDeadLetter(message, job, projectEnv(env, job.project_id)))
    }),
  )
}

async function recordDeadLetter(message: Message, job: WhatsAppJob, env: Env): Promise<void> {
  try {
    const errorCode = await recordExhausted(env.DB, job.id, now())
    // A job that gave up unsent needs a human: Meta kept failing it (rate limits past the code's
    // life, an outage) or the consumer kept crashing.
    logEvent(errorCode === undefined ? 'info' : 'error', 'whatsapp.dead_letter', {
      delivery_id: job.id,
      phone_id: job.phone_id,
      recorded: errorCode !== undefined,
      error_code: errorCode ?? null,
      alert: errorCode !== undefined,
    })
    message.ack()
  } catch (err) {
    logEvent('error', 'whatsapp.dead_letter_error', { delivery_id: job.id, error: errorName(err), alert: true })
    message.retry()
  }
}
