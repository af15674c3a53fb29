/**
 * Cloudflare Turnstile, checked on the server before any code is sent.
 *
 * Cloudflare documents test keys whose answers are fixed (developers.cloudflare.com/turnstile/
 * troubleshooting/testing/): their sitekeys make the widget produce the dummy token below, and their
 * secrets give a fixed siteverify verdict. The Worker answers for the test secrets itself, exactly as
 * documented, so local development and tests make no outbound call; any other secret is checked by
 * Cloudflare's siteverify endpoint. Test keys pass every request, so the configuration refuses them
 * for a live project (src/config.ts).
 *
 * A real verdict counts only for this page and this form: siteverify reports the hostname the widget
 * was solved on and the action the widget declared, and both must be the expected ones, so a token
 * solved on another site that uses the same widget, or for another form, is refused.
 */

export const SITEVERIFY_URL = 'https://challenges.cloudflare.com/turnstile/v0/siteverify'

/** The response token every test sitekey produces; production secrets reject it. */
export const DUMMY_TOKEN = 'XXXX.DUMMY.TOKEN.XXXX'

/** Test sitekeys: the page needs neither Cloudflare's script nor a real challenge for them. */
const TEST_SITEKEYS = new Set([
  '1x00000000000000000000AA', // always passes (visible)
  '2x00000000000000000000AB', // always blocks (visible)
  '1x00000000000000000000BB', // always passes (invisible)
  '2x00000000000000000000BB', // always blocks (invisible)
  '3x00000000000000000000FF', // forces an interactive challenge
])

/** Test secrets and the siteverify error codes they always give (an empty list means success). */
const TEST_SECRETS: ReadonlyMap<string, string[]> = new Map([
  ['1x0000000000000000000000000000000AA', []],
  ['2x0000000000000000000000000000000AA', ['invalid-input-response']],
  ['3x0000000000000000000000000000000AA', ['timeout-or-duplicate']],
])

export const isTestSitekey = (sitekey: string) => TEST_SITEKEYS.has(sitekey)
export const isTestSecret = (secret: string) => TEST_SECRETS.has(secret)

export interface TurnstileVerdict {
  success: boolean
  errorCodes: string[]
}

/** What a verdict must be for: the visitor's IP (passed on), the page's hostname and the form's action. */
export interface TurnstileExpectation {
  remoteIp?: string | undefined
  hostname: string
  action: string
}

export async function verifyTurnstile(
  secret: string,
  token: string | undefined,
  expected: TurnstileExpectation,
  fetchFn: typeof fetch = fetch,
): Promise<TurnstileVerdict> {
  if (!token) return { success: false, errorCodes: ['missing-input-response'] }
  const fixed = TEST_SECRETS.get(secret)
  if (fixed) return { success: fixed.length === 0, errorCodes: fixed }
  const form = new FormData()
  form.set('secret', secret)
  form.set('response', token)
  if (expected.remoteIp) form.set('remoteip', expected.remoteIp)
  try {
    const res = await fetchFn(SITEVERIFY_URL, { method: 'POST', body: form })
    const body = (await res.json()) as {
      success?: unknown
      'error-codes'?: unknown
      hostname?: unknown
      action?: unknown
    }
    const errorCodes = Array.isArray(body['error-codes']) ? body['error-codes'].map(String) : []
    if (body.success !== true) return { success: false, errorCodes }
    if (body.hostname !== expected.hostname) return { success: false, errorCodes: ['hostname-mismatch'] }
    if (body.action !== expected.action) return { success: false, errorCodes: ['action-mismatch'] }
    return { success: true, errorCodes }
  } catch (err) {
    // Fail closed: no code is sent when the check cannot be made.
    return { success: false, errorCodes: [`siteverify-unreachable: ${err instanceof Error ? err.message : err}`] }
  }
}
