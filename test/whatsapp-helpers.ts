import { createExecutionContext, createMessageBatch, getQueueResult } from 'cloudflare:test'
import { env } from 'cloudflare:workers'
import { vi } from 'vitest'
import { hmacSha256, toHex } from '../src/crypto'
import { DEAD_LETTER_QUEUE, DELIVERY_QUEUE } from '../src/delivery/consumer'
import type { DeliveryJob } from '../src/delivery/job'
import worker from '../src/index'
import { capturingQueue, issueCode, newProject, type TestProject } from './helpers'

export { capturingQueue, DEAD_LETTER_QUEUE, DELIVERY_QUEUE }

/** The test bindings with the Meta provider selected (the Graph API is mocked at fetch). */
export const metaEnv = (overrides: Partial<Env> = {}): Env => ({
  ...env,
  WHATSAPP_PROVIDER: 'meta',
  ...overrides,
})

// Settings that keep other features' limits out of the way of delivery tests.
const RELAXED_LIMITS = {
  phone_send_cooldown_seconds: 0,
  phone_sends_per_hour: 1_000,
  phone_sends_per_day: 10_000,
  allowed_countries: '*',
}

let phoneCounter = 0

/** A valid US number not used before in this test file (storage, and so the outbox, is per file). */
export function freshPhone(): string {
  phoneCounter += 1
  return `+1202555${String(1_000 + phoneCounter).padStart(4, '0')}`
}

export interface IssuedJob {
  job: DeliveryJob
  code: string
  project: TestProject
  phoneNumber: string
}

/**
 * Issues a code through the real login_or_create route (a fresh project and phone unless given) and
 * returns the delivery job it enqueued (captured, not queued) with the plaintext code.
 */
export async function issueJob(
  options: { phoneNumber?: string; project?: TestProject; extra?: Record<string, unknown> } = {},
): Promise<IssuedJob> {
  const project = options.project ?? (await newProject('test', RELAXED_LIMITS))
  const phoneNumber = options.phoneNumber ?? freshPhone()
  const { job, code } = await issueCode(project, { phone_number: phoneNumber, ...options.extra }, { deliver: false })
  return { job, code, project, phoneNumber }
}

/**
 * Runs the Worker's queue() handler on one batch, as the Queues runtime would, and returns the
 * ack/retry result plus a spy per message on retry() (getQueueResult drops delaySeconds).
 */
export async function runQueue(
  bodies: unknown[],
  options: {
    env?: Env
    queue?: string
    attempts?: number
    /** Sees the messages before the consumer runs (and before their retry spies), e.g. to hook retry(). */
    beforeRun?: (messages: readonly Message[]) => void
  } = {},
) {
  const batch = createMessageBatch(
    options.queue ?? DELIVERY_QUEUE,
    bodies.map((body, i) => ({
      id: `message-${i}-${crypto.randomUUID()}`,
      timestamp: new Date(),
      attempts: options.attempts ?? 1,
      body,
    })),
  )
  options.beforeRun?.(batch.messages)
  const retry = batch.messages.map((m) => vi.spyOn(m, 'retry'))
  const ctx = createExecutionContext()
  await worker.queue(batch, options.env ?? env)
  const result = await getQueueResult(batch, ctx)
  const ids = batch.messages.map((m) => m.id)
  return { batch, result, retry, ids }
}

export interface DeliveryRow {
  id: string
  status: string
  provider: string | null
  wamid: string | null
  attempts: number
  error_code: number | null
  error_detail: string | null
  lease_until: number | null
  expires_at: number
}

export async function deliveryRow(id: string): Promise<DeliveryRow | null> {
  return env.DB.prepare(
    `SELECT id, status, provider, wamid, attempts, error_code, error_detail, lease_until, expires_at
     FROM deliveries WHERE id = ?1`,
  )
    .bind(id)
    .first<DeliveryRow>()
}

/** A Graph API reply as Meta sends it. */
export function metaReply(status: number, body: unknown): Response {
  return new Response(typeof body === 'string' ? body : JSON.stringify(body), {
    status,
    headers: { 'content-type': typeof body === 'string' ? 'text/html' : 'application/json' },
  })
}

export const metaSuccess = (wamid: string) =>
  metaReply(200, {
    messaging_product: 'whatsapp',
    contacts: [{ input: '12025550100', wa_id: '12025550100' }],
    messages: [{ id: wamid }],
  })

export const metaError = (status: number, code: number) =>
  metaReply(status, {
    error: {
      message: `(#${code}) error`,
      type: 'OAuthException',
      code,
      error_data: { messaging_product: 'whatsapp', details: 'details' },
      fbtrace_id: 'Az8or2yhqkZfEZ-_4Qn_Bam',
    },
  })

/** `sha256=<hex>` of the body under the test app secret, as Meta signs webhooks. */
export async function signWebhook(body: string, secret: string = env.WHATSAPP_APP_SECRET): Promise<string> {
  return `sha256=${toHex(await hmacSha256(secret, body))}`
}

/** A status webhook payload as Meta sends it. */
export function statusPayload(statuses: { id: string; status: string; errors?: { code: number }[] }[]): unknown {
  return {
    object: 'whatsapp_business_account',
    entry: [
      {
        id: '102290129340398',
        changes: [
          {
            field: 'messages',
            value: {
              messaging_product: 'whatsapp',
              metadata: { display_phone_number: '15550783881', phone_number_id: '106540352242922' },
              statuses: statuses.map((s) => ({
                ...s,
                timestamp: '1750857384',
                recipient_id: '12025550100',
                ...(s.errors
                  ? {
                      errors: s.errors.map((e) => ({
                        ...e,
                        title: 'title',
                        message: 'message',
                        href: 'https://x',
                      })),
                    }
                  : {}),
              })),
            },
          },
        ],
      },
    ],
  }
}
