/**
 * The WhatsApp AUTHENTICATION template, kept in step with the codes this service issues.
 *
 * Meta fixes two numbers when the template is created, while each request picks its own
 * `expiration_minutes` (1-10):
 * - the expiry footer ("This code expires in N minutes."): left out. One template would state the
 *   same N for every code, wrong for all other lifetimes; the login page states the real one.
 * - the message time-to-live (`message_send_ttl_seconds`, 30-900): how long WhatsApp keeps trying
 *   to reach the phone. Set to the shortest code lifetime a request can choose (1 minute), so a
 *   message never outlives the code it carries by more than the moments it waited in our queue
 *   (the consumer does not send a code that has already expired). A phone that stays offline
 *   longer gets nothing, and the user asks for a new code.
 *
 * Dependency-free on purpose: `npm run whatsapp:template` (scripts/whatsapp-template.mjs) imports
 * this file directly under Node, and the Worker's tests check it against the request schema.
 */

/** The shortest code lifetime a request may choose (expiration_minutes 1), in seconds. */
export const SHORTEST_CODE_LIFETIME_SECONDS = 60

/** `message_send_ttl_seconds` of the template: never longer than any code's lifetime. */
export const MESSAGE_TTL_SECONDS = SHORTEST_CODE_LIFETIME_SECONDS

/** Optional one-tap autofill on Android: the app's package name and its app signing key hash. */
export interface OneTapApp {
  packageName: string
  signatureHash: string
}

/**
 * The body of `POST /<WABA_ID>/upsert_message_templates`: creates the template, or updates it, in
 * every language at once. Copy-code button by default; with `oneTap` a one-tap autofill button
 * (Android; other devices show a copy-code button instead).
 */
export function templateUpsertBody(name: string, languages: readonly string[], oneTap?: OneTapApp | null) {
  const button = oneTap
    ? {
        type: 'otp',
        otp_type: 'one_tap',
        supported_apps: [{ package_name: oneTap.packageName, signature_hash: oneTap.signatureHash }],
      }
    : { type: 'otp', otp_type: 'copy_code' }
  return {
    name,
    languages: [...languages],
    category: 'AUTHENTICATION',
    message_send_ttl_seconds: MESSAGE_TTL_SECONDS,
    components: [
      { type: 'body', add_security_recommendation: true },
      { type: 'buttons', buttons: [button] },
    ],
  }
}
