import { Hono } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { now } from '../clock'
import type { AppEnv } from '../env'
import { StytchError } from '../errors'
import { applyStatuses } from '../whatsapp/deliveries'
import { logEvent } from '../log'
import { secretEquals, statusEvents, verifySignature } from '../whatsapp/webhook'

/**
 * Meta's WhatsApp webhook. Authenticated by Meta's own means (verify token, payload signature), not
 * by project credentials: app.ts applies projectAuth to /v1/otps/* only.
 */
export const webhookRoutes = new Hono<AppEnv>()

const MAX_WEBHOOK_BYTES = 1024 * 1024
// Meta sends an integer; anything else is refused rather than reflected.
const CHALLENGE = /^[0-9A-Za-z_-]{1,128}$/

/**
 * GET: the subscription handshake. The one reply of this service that is not JSON: Meta requires
 * the hub.challenge value echoed back as the plain body. A failed handshake is a Stytch-shaped 403.
 */
webhookRoutes.get('/whatsapp', async (c) => {
  const expected = c.env.WHATSAPP_VERIFY_TOKEN
  if (!expected) {
    throw new StytchError('service_unavailable', { message: 'WHATSAPP_VERIFY_TOKEN is not configured.' })
  }
  const token = c.req.query('hub.verify_token') ?? ''
  const challenge = c.req.query('hub.challenge') ?? ''
  const tokenOk = await secretEquals(token, expected)
  if (c.req.query('hub.mode') !== 'subscribe' || !tokenOk || !CHALLENGE.test(challenge)) {
    throw new StytchError('forbidden', { message: 'The webhook verification request was not accepted.' })
  }
  c.header('X-Content-Type-Options', 'nosniff')
  return c.text(challenge)
})

/**
 * POST: event notifications. The signature is checked over the raw bytes before anything parses
 * them; status events then move deliveries forward. Applied before answering, so a D1 failure
 * becomes a 500 and Meta redelivers the notification.
 */
webhookRoutes.post(
  '/whatsapp',
  bodyLimit({
    maxSize: MAX_WEBHOOK_BYTES,
    onError: () => {
      throw new StytchError('request_too_large', {
        message: `The request body is larger than ${MAX_WEBHOOK_BYTES} bytes.`,
      })
    },
  }),
  async (c) => {
    const appSecret = c.env.WHATSAPP_APP_SECRET
    if (!appSecret) {
      throw new StytchError('service_unavailable', { message: 'WHATSAPP_APP_SECRET is not configured.' })
    }
    const raw = new Uint8Array(await c.req.arrayBuffer())
    if (!(await verifySignature(appSecret, raw, c.req.header('x-hub-signature-256')))) {
      throw new StytchError('invalid_webhook_signature')
    }
    let payload: unknown
    try {
      payload = JSON.parse(new TextDecoder().decode(raw))
    } catch {
      throw new StytchError('bad_request', { message: 'The request body is not valid JSON.' })
    }
    const events = statusEvents(payload)
    const updated = await applyStatuses(c.env.DB, events, now())
    if (events.length > 0) logEvent('info', 'whatsapp.webhook_statuses', { received: events.length, updated })
    return c.json({ request_id: c.var.requestId, status_code: 200 as const })
  },
)
