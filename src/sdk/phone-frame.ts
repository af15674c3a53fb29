import {
  type CountryCode,
  getExampleNumber,
  isSupportedCountry,
  parsePhoneNumberFromString,
} from 'libphonenumber-js/max'
import examples from 'libphonenumber-js/mobile/examples'
import { sha256 } from '../crypto'

/**
 * A drop-in for the hidden frame in which Stytch's prebuilt UI parses the phone numbers people type
 * (its `clientside-services` page, normally loaded from Stytch's own host). Pointed at this one with
 * the SDK's `endpoints.clientsideServicesIframeURL`, the UI needs nothing from Stytch's hosts, and the
 * numbers typed go only to this service. The frame speaks the SDK's protocol: the page posts
 * `{ method, args: [request] }` with a MessagePort, and the frame answers on that port with
 * `{ success: true, payload }` or `{ success: false, error: { name, message } }`. The numbers are
 * parsed here, by the same libphonenumber metadata (the full one) that validates them on send, so
 * the form never accepts a number the API would refuse as invalid.
 */

export interface ParsedForFrame {
  isValid: boolean
  number: string
  national: string
}

const region = (code: string | undefined): CountryCode | undefined =>
  code && isSupportedCountry(code) ? code : undefined

/**
 * The SDK's `parsedPhoneNumber`: a complete valid number as E.164 and in national format (the field
 * then shows it so); anything else as typed, left alone while the person types. (libphonenumber's
 * as-you-type formatter would format partial numbers too, at 7 KB gzipped of Worker code.)
 */
export function parseForFrame(phoneNumber: string, regionCode: string | undefined): ParsedForFrame {
  const country = region(regionCode)
  const parsed = parsePhoneNumberFromString(phoneNumber, country)
  if (parsed?.isValid()) return { isValid: true, number: parsed.number, national: parsed.formatNational() }
  return { isValid: false, number: parsed?.number ?? phoneNumber, national: phoneNumber }
}

/** The SDK's `getExamplePhoneNumber`: a mobile number of the country, as a placeholder. */
export function exampleForFrame(regionCode: string): string | undefined {
  const country = region(regionCode)
  return country ? getExampleNumber(country, examples)?.formatNational() : undefined
}

/** The frame's script: relays each call to this service (same origin) and answers on the call's port. */
const FRAME_SCRIPT = `(() => {
  const ask = async (path, init) => {
    const res = await fetch(path, init)
    const body = await res.json()
    if (!res.ok) throw new Error(body.error_message || 'The phone number service answered ' + res.status)
    return body
  }
  const methods = {
    parsedPhoneNumber: (req) =>
      ask('phone_numbers/parse', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ phoneNumber: String(req.phoneNumber ?? ''), regionCode: req.regionCode ?? null }),
      }),
    getExamplePhoneNumber: (req) =>
      ask('phone_numbers/example?regionCode=' + encodeURIComponent(String(req.regionCode ?? ''))),
  }
  addEventListener('message', (event) => {
    const port = event.ports[0]
    const message = event.data
    if (!port || !message || typeof message.method !== 'string' || !Array.isArray(message.args)) return
    const method = Object.hasOwn(methods, message.method) ? methods[message.method] : null
    const reply = method
      ? Promise.resolve().then(() => method(message.args[0] ?? {}))
      : Promise.reject(new Error(message.method + ' is not served by this frame'))
    reply.then(
      (payload) => port.postMessage({ success: true, payload }),
      (err) => port.postMessage({ success: false, error: { name: 'Error', message: String(err?.message ?? err) } }),
    )
  })
})()`

export const FRAME_HTML = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Phone number parsing</title></head>
<body><script>${FRAME_SCRIPT}</script></body>
</html>
`

let scriptHash: Promise<string> | undefined

/**
 * The frame's Content-Security-Policy: its own inline script (by hash) and requests to this service
 * only. It sets no frame-ancestors: the frame is made to be embedded by the app's pages, and it
 * holds nothing but a number parser.
 */
export async function frameContentSecurityPolicy(): Promise<string> {
  scriptHash ??= sha256(FRAME_SCRIPT).then((digest) => btoa(String.fromCharCode(...digest)))
  return `default-src 'none'; script-src 'sha256-${await scriptHash}'; connect-src 'self'; base-uri 'none'; form-action 'none'`
}
