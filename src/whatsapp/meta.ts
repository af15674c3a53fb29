import * as z from 'zod'
import { DEFAULT_TEMPLATE_LANGUAGES, GRAPH_API_ORIGIN, META_PATTERNS, templateLanguages } from '../config'
import {
  callProvider,
  type DeliveryProvider,
  type ErrorRule,
  type OutgoingCode,
  resultOfRule,
  resultOfStatus,
  type SendResult,
  shardCallbackData,
} from '../delivery/provider'
import type { Locale } from '../schemas'

/**
 * The WhatsApp Business Cloud API provider: one AUTHENTICATION template message (copy-code button)
 * per code, `POST https://graph.facebook.com/<version>/<phone-number-id>/messages`. The code goes in
 * twice (body parameter and copy-code button parameter); language codes are Meta's (`en_US`, `pt_BR`);
 * errors are classified by Meta's `error.code`.
 */

// The Graph API host (the version and phone-number id follow in the path), the shapes of the
// settings and the default template languages are in the configuration list, which the doctor shares.
export { DEFAULT_TEMPLATE_LANGUAGES, GRAPH_API_ORIGIN }

/** Meta answers in well under a second; past this the attempt is retried (the same code, harmless). */
const META_TIMEOUT_MS = 10_000

/** The provider's configuration, checked by metaConfig(). */
export interface MetaConfig {
  graphVersion: string
  phoneNumberId: string
  accessToken: string
  templateName: string
  languages: Record<Locale, string>
}

/**
 * Reads and checks the provider's configuration. Values end up in a URL and a request body, so each
 * is held to its documented shape; the reason names the variable but never its value.
 */
export function metaConfig(env: Env): { ok: true; config: MetaConfig } | { ok: false; reason: string } {
  const accessToken = (env.WHATSAPP_ACCESS_TOKEN ?? '').trim()
  if (!accessToken) return { ok: false, reason: 'WHATSAPP_ACCESS_TOKEN is not set' }
  const phoneNumberId = (env.WHATSAPP_PHONE_NUMBER_ID ?? '').trim()
  if (!META_PATTERNS.numericId.test(phoneNumberId))
    return { ok: false, reason: 'WHATSAPP_PHONE_NUMBER_ID must be digits' }
  const graphVersion = (env.WHATSAPP_GRAPH_VERSION ?? '').trim()
  if (!META_PATTERNS.graphVersion.test(graphVersion)) {
    return { ok: false, reason: 'WHATSAPP_GRAPH_VERSION must look like v26.0' }
  }
  const templateName = (env.WHATSAPP_TEMPLATE_NAME ?? '').trim()
  if (!META_PATTERNS.templateName.test(templateName)) {
    return { ok: false, reason: 'WHATSAPP_TEMPLATE_NAME must be lowercase letters, digits and underscores' }
  }
  const languages = templateLanguages(env.WHATSAPP_TEMPLATE_LANGUAGES)
  if (typeof languages === 'string') {
    return {
      ok: false,
      reason: 'WHATSAPP_TEMPLATE_LANGUAGES must be a JSON object like {"en":"en_US","pt-br":"pt_BR"}',
    }
  }
  return { ok: true, config: { graphVersion, phoneNumberId, accessToken, templateName, languages } }
}

/** The exact Graph API request for one code: the code goes in the body and in the URL button. */
export function buildSendRequest(config: MetaConfig, message: OutgoingCode): { url: string; init: RequestInit } {
  const body = {
    messaging_product: 'whatsapp',
    recipient_type: 'individual',
    // Meta's documented form: the E.164 digits without '+'.
    to: message.phoneNumber.replace(/^\+/, ''),
    type: 'template',
    template: {
      name: config.templateName,
      language: { code: config.languages[message.locale] },
      components: [
        { type: 'body', parameters: [{ type: 'text', text: message.code }] },
        // A copy-code button is stored as a URL button; its parameter carries the code to copy.
        { type: 'button', sub_type: 'url', index: '0', parameters: [{ type: 'text', text: message.code }] },
      ],
    },
    // Echoed in the message's status webhooks: they update the delivery row in this shard alone.
    biz_opaque_callback_data: shardCallbackData(message.shard),
  }
  return {
    url: `${GRAPH_API_ORIGIN}/${config.graphVersion}/${config.phoneNumberId}/messages`,
    init: {
      method: 'POST',
      headers: { Authorization: `Bearer ${config.accessToken}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    },
  }
}

export type MetaErrorRule = ErrorRule

/**
 * Meta's `error.code` → what to do. Meta says to branch on the code, not on the
 * HTTP status, whose mapping its own tables disagree on. `fallback` marks the codes whose meaning is
 * "this recipient cannot receive the WhatsApp message": 131026 (message undeliverable: the number
 * is not on WhatsApp, has not accepted WhatsApp's current terms, or runs an app too old for the
 * message) and 130497 (this business may not message users in the recipient's country). For those,
 * a project with whatsapp_fallback 'sms' sends the same code by SMS. The other recipient-side codes
 * are about one message or marketing (experiments, engagement limits, opt-outs) or are the sender's
 * own set-up (test-number allow list): an SMS would not be the answer to them.
 */
export const META_ERROR_RULES: Readonly<Record<number, MetaErrorRule>> = {
  130429: { retry: true, label: 'throughput_limit' },
  131056: { retry: true, label: 'pair_rate_limit', minDelaySeconds: 6 },
  80007: { retry: true, label: 'account_rate_limit' },
  4: { retry: true, label: 'app_rate_limit' },
  131000: { retry: true, label: 'meta_unknown_error' },
  131016: { retry: true, label: 'meta_service_unavailable' },
  1: { retry: true, label: 'meta_api_unknown' },
  2: { retry: true, label: 'meta_api_service' },
  131048: { retry: false, label: 'spam_rate_limit', alert: true },
  100: { retry: false, label: 'invalid_parameter', alert: true },
  131008: { retry: false, label: 'required_parameter_missing', alert: true },
  131009: { retry: false, label: 'parameter_value_invalid', alert: true },
  132000: { retry: false, label: 'template_parameter_count_mismatch', alert: true },
  132001: { retry: false, label: 'template_not_found', alert: true },
  132012: { retry: false, label: 'template_parameter_format_mismatch', alert: true },
  132015: { retry: false, label: 'template_paused', alert: true },
  132016: { retry: false, label: 'template_disabled', alert: true },
  131026: { retry: false, label: 'undeliverable', fallback: true },
  131030: { retry: false, label: 'recipient_not_allowed' },
  131047: { retry: false, label: 'reengagement_required' },
  190: { retry: false, label: 'access_token_expired', alert: true },
  0: { retry: false, label: 'auth_exception', alert: true },
  3: { retry: false, label: 'capability_missing', alert: true },
  10: { retry: false, label: 'permission_denied', alert: true },
  368: { retry: false, label: 'account_restricted', alert: true },
  131031: { retry: false, label: 'account_locked', alert: true },
  131042: { retry: false, label: 'payment_issue', alert: true },
  // Further codes of Meta's error-code reference. Temporary states of Meta or of the account retry;
  // states only the operator can change (registration, certificates, template text) alert.
  131057: { retry: true, label: 'account_maintenance' },
  133004: { retry: true, label: 'server_temporarily_unavailable' },
  613: { retry: true, label: 'api_rate_limit' },
  33: { retry: false, label: 'object_not_found', alert: true },
  131021: { retry: false, label: 'recipient_is_sender' },
  131037: { retry: false, label: 'display_name_approval_needed', alert: true },
  131045: { retry: false, label: 'phone_registration_error', alert: true },
  131049: { retry: false, label: 'ecosystem_engagement_limit' },
  131050: { retry: false, label: 'user_stopped_marketing' },
  131051: { retry: false, label: 'unsupported_message_type', alert: true },
  131055: { retry: false, label: 'method_not_allowed', alert: true },
  130472: { retry: false, label: 'recipient_in_experiment' },
  130497: { retry: false, label: 'country_restricted', alert: true, fallback: true },
  132005: { retry: false, label: 'template_text_too_long', alert: true },
  132007: { retry: false, label: 'template_policy_violation', alert: true },
  133000: { retry: false, label: 'incomplete_deregistration', alert: true },
  133005: { retry: false, label: 'two_step_pin_mismatch', alert: true },
  133006: { retry: false, label: 'phone_reverification_needed', alert: true },
  133008: { retry: false, label: 'two_step_pin_guesses', alert: true },
  133009: { retry: false, label: 'two_step_pin_too_fast', alert: true },
  133010: { retry: false, label: 'phone_not_registered', alert: true },
  133015: { retry: false, label: 'registration_wait', alert: true },
  135000: { retry: false, label: 'generic_user_error', alert: true },
}

/** The rule for a Meta error code, including the 200-299 permission range; undefined when unlisted. */
export function metaErrorRule(code: number): MetaErrorRule | undefined {
  return (
    META_ERROR_RULES[code] ??
    (code >= 200 && code <= 299 ? { retry: false, label: 'permission_denied', alert: true } : undefined)
  )
}

const MetaErrorBody = z.object({ error: z.object({ code: z.number().int() }) })
const MetaSuccessBody = z.object({ messages: z.array(z.object({ id: z.string().min(1) })).min(1) })

/** Classifies a non-2xx Graph API reply by `error.code`, falling back to the HTTP status without one. */
export function classifyMetaError(httpStatus: number, body: unknown): Exclude<SendResult, { kind: 'sent' }> {
  const parsed = MetaErrorBody.safeParse(body)
  if (!parsed.success) return resultOfStatus(httpStatus)
  const code = parsed.data.error.code
  return resultOfRule(code, metaErrorRule(code), httpStatus, 'meta_error')
}

/** The Meta provider over an injectable `fetch` (tests mock the Graph API at this boundary). */
export function metaProvider(config: MetaConfig, fetchFn: typeof fetch): DeliveryProvider {
  return {
    name: 'meta',
    channel: 'whatsapp',
    async send(message) {
      const { url, init } = buildSendRequest(config, message)
      const reply = await callProvider(fetchFn, url, init, META_TIMEOUT_MS)
      if ('kind' in reply) return reply
      if (reply.status >= 200 && reply.status < 300) {
        const ok = MetaSuccessBody.safeParse(reply.body)
        // Accepted without a readable id: still sent (resending would duplicate), just untrackable.
        return { kind: 'sent', messageId: ok.success ? (ok.data.messages[0]?.id ?? null) : null }
      }
      return classifyMetaError(reply.status, reply.body)
    },
  }
}
