import { bodyLimit } from 'hono/body-limit'
import { now } from '../clock'
import { shardOfCallbackData } from '../delivery/provider'
import { applyProviderStatuses } from '../delivery/statuses'
import { StytchError } from '../errors'
import { logEvent } from '../log'
import { AckResponse, MetaNotification, TwilioStatusCallback, WebhookVerifyQuery } from '../schemas'
import { twilioStatusEvent, verifyTwilioSignature } from '../sms/webhook'
import { metaErrorRule } from '../whatsapp/meta'
import {
  ALERTING_TEMPLATE_EVENTS,
  secretEquals,
  statusEvents,
  verifySignature,
  type WebhookNotice,
  webhookNotices,
} from '../whatsapp/webhook'
import { RouteGroup } from './group'

/**
 * The providers' webhooks: Meta's for WhatsApp, Twilio's status callback for SMS. Authenticated by
 * the providers' own means (verify token, payload signatures), not by project credentials: app.ts
 * applies projectAuth to the OTP, Users and Sessions APIs only.
 */
export const webhookRoutes = new RouteGroup('/v1/webhooks')

const MAX_WEBHOOK_BYTES = 1024 * 1024
const bodyLimited = bodyLimit({
  maxSize: MAX_WEBHOOK_BYTES,
  onError: () => {
    throw new StytchError('request_too_large', {
      message: `The request body is larger than ${MAX_WEBHOOK_BYTES} bytes.`,
    })
  },
})
// Meta sends an integer; anything else is refused rather than reflected.
const CHALLENGE = /^[0-9A-Za-z_-]{1,128}$/

/**
 * GET: the subscription handshake. The one reply of this service that is not JSON: Meta requires
 * the hub.challenge value echoed back as the plain body. A failed handshake is a Stytch-shaped 403.
 */
webhookRoutes.add(
  {
    method: 'get',
    path: '/whatsapp',
    operationId: 'webhooksWhatsappVerify',
    summary: "Meta's webhook subscription handshake",
    description: 'The one reply that is not JSON: Meta requires hub.challenge echoed back as the plain body.',
    tag: 'Webhooks',
    auth: 'none',
    query: WebhookVerifyQuery,
    validated: false,
    response: { text: 'The hub.challenge value.' },
    errors: ['forbidden', 'service_unavailable'],
  },
  async (c) => {
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
  },
)

/**
 * POST: event notifications. The signature is checked over the raw bytes before anything parses
 * them; status events then move deliveries forward. Applied before answering, so a D1 failure
 * becomes a 500 and Meta redelivers the notification.
 */
webhookRoutes.add(
  {
    method: 'post',
    path: '/whatsapp',
    operationId: 'webhooksWhatsappNotify',
    summary: "Meta's delivery status notifications (authenticated by the payload signature)",
    tag: 'Webhooks',
    auth: 'none',
    body: MetaNotification,
    validated: false,
    response: AckResponse,
    errors: ['invalid_webhook_signature', 'bad_request', 'request_too_large', 'service_unavailable'],
    use: [bodyLimited],
  },
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
    await applyProviderStatuses(c.env, 'whatsapp', events, now())
    for (const notice of webhookNotices(payload)) logNotice(notice)
    return c.json({ request_id: c.var.requestId, status_code: 200 as const })
  },
)

/**
 * POST: Twilio's SMS status callback (the StatusCallback each send names, TWILIO_STATUS_CALLBACK_URL).
 * The X-Twilio-Signature is checked over the URL as called and the form parameters before anything
 * reads them; a delivered, undelivered or failed status then moves its delivery forward. Applied
 * before answering, so a D1 failure becomes a 500 and Twilio tries the callback again.
 */
webhookRoutes.add(
  {
    method: 'post',
    path: '/twilio',
    operationId: 'webhooksTwilioStatus',
    summary: "Twilio's SMS delivery status callback (authenticated by X-Twilio-Signature)",
    tag: 'Webhooks',
    auth: 'none',
    body: TwilioStatusCallback,
    bodyMedia: 'application/x-www-form-urlencoded',
    validated: false,
    response: AckResponse,
    errors: ['invalid_webhook_signature', 'request_too_large', 'service_unavailable'],
    use: [bodyLimited],
  },
  async (c) => {
    const authToken = c.env.TWILIO_AUTH_TOKEN
    if (!authToken) {
      throw new StytchError('service_unavailable', { message: 'TWILIO_AUTH_TOKEN is not configured.' })
    }
    // Whatever the declared type, the body is read as Twilio's form encoding: a body that is not one
    // has no parameters, and its signature cannot match.
    const params = new URLSearchParams(await c.req.text())
    if (!(await verifyTwilioSignature(authToken, c.req.url, params, c.req.header('x-twilio-signature')))) {
      throw new StytchError('invalid_webhook_signature')
    }
    const event = twilioStatusEvent(params)
    // The shard of the delivery, which the send put in the StatusCallback URL (src/sms/twilio.ts).
    const shard = shardOfCallbackData(new URL(c.req.url).search)
    if (event) await applyProviderStatuses(c.env, 'sms', [shard === undefined ? event : { ...event, shard }], now())
    return c.json({ request_id: c.var.requestId, status_code: 200 as const })
  },
)

function logNotice(notice: WebhookNotice): void {
  if (notice.kind === 'template_status') {
    const alert = ALERTING_TEMPLATE_EVENTS.has(notice.event)
    logEvent(alert ? 'error' : 'info', 'whatsapp.template_status', {
      template_event: notice.event,
      template: notice.template,
      language: notice.language,
      reason: notice.reason,
      alert,
    })
    return
  }
  const rule = metaErrorRule(notice.errorCode)
  logEvent('error', 'whatsapp.webhook_error', {
    error_code: notice.errorCode,
    detail: rule?.label ?? 'meta_error',
    alert: rule ? (rule.alert ?? false) || rule.retry === false : true,
  })
}
