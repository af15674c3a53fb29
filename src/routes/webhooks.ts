import { bodyLimit } from 'hono/body-limit'
import { now } from '../clock'
import { StytchError } from '../errors'
import { sendCountry } from '../limits'
import { logEvent } from '../log'
import { parsePhone } from '../phone'
import { AckResponse, MetaNotification, WebhookVerifyQuery } from '../schemas'
import { type AppliedStatus, applyStatuses } from '../whatsapp/deliveries'
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
 * Meta's WhatsApp webhook. Authenticated by Meta's own means (verify token, payload signature), not
 * by project credentials: app.ts applies projectAuth to the OTP, Users and Sessions APIs only.
 */
export const webhookRoutes = new RouteGroup('/v1/webhooks')

const MAX_WEBHOOK_BYTES = 1024 * 1024
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
    use: [
      bodyLimit({
        maxSize: MAX_WEBHOOK_BYTES,
        onError: () => {
          throw new StytchError('request_too_large', {
            message: `The request body is larger than ${MAX_WEBHOOK_BYTES} bytes.`,
          })
        },
      }),
    ],
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
    const at = now()
    const applied = await applyStatuses(c.env.DB, events, at)
    if (events.length > 0) {
      logEvent('info', 'whatsapp.webhook_statuses', { received: events.length, updated: applied.length })
    }
    for (const status of applied) logStatus(status, at)
    for (const notice of webhookNotices(payload)) logNotice(notice)
    return c.json({ request_id: c.var.requestId, status_code: 200 as const })
  },
)

/**
 * One line (and metric) per status that moved a delivery: delivered and read with their latency
 * since the code was issued, failed with Meta's code. A failure an operator must fix (payment,
 * account, template; or a code missing from the table) is an alert: such failures often arrive only
 * here, after Meta accepted the message.
 */
function logStatus(status: AppliedStatus, at: number): void {
  const phone = status.phoneNumber ? parsePhone(status.phoneNumber) : null
  const fields = {
    delivery_id: status.deliveryId,
    project_id: status.projectId,
    country: phone ? sendCountry(phone) : null,
    status: status.status,
    attempts: status.attempts,
    latency_ms: Math.max(0, at - status.createdAt),
  }
  if (status.status !== 'failed') {
    logEvent('info', 'whatsapp.status', fields)
    return
  }
  const rule = status.errorCode === null ? undefined : metaErrorRule(status.errorCode)
  const alert = rule ? (rule.alert ?? false) : true
  logEvent(alert ? 'error' : 'warn', 'whatsapp.status', {
    ...fields,
    error_code: status.errorCode,
    detail: rule?.label ?? 'meta_error',
    alert,
  })
}

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
