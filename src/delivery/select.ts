import { unreachableNumbers } from '../config'
import { logEvent } from '../log'
import { twilioConfig, twilioProvider } from '../sms/twilio'
import { metaConfig, metaProvider } from '../whatsapp/meta'
import { consoleProvider } from './console'
import type { Channel } from './job'
import { type DeliveryProvider, unconfiguredProvider } from './provider'

/** SMS_PROVIDER, unset meaning "none". */
function smsProviderName(env: Env): string {
  return (env.SMS_PROVIDER ?? '').trim() || 'none'
}

/** Whether this deployment sends SMS at all (SMS routes, WhatsApp → SMS fallback). */
export function smsEnabled(env: Env): boolean {
  return smsProviderName(env) !== 'none'
}

/** The console's numbers that are not on WhatsApp (CONSOLE_WHATSAPP_UNREACHABLE; none when malformed, logged). */
function consoleUnreachable(env: Env): ReadonlySet<string> {
  const parsed = unreachableNumbers(env.CONSOLE_WHATSAPP_UNREACHABLE)
  if (typeof parsed !== 'string') return parsed
  logEvent('error', 'whatsapp.provider_not_configured', {
    provider: 'console',
    reason: `CONSOLE_WHATSAPP_UNREACHABLE ${parsed}`,
    alert: true,
  })
  return new Set()
}

/**
 * The provider of a channel: WHATSAPP_PROVIDER ("meta" or "console") for WhatsApp, SMS_PROVIDER
 * ("twilio" or "console") for SMS; only the exact value "console" selects the console. A missing or
 * malformed configuration gives a provider that fails every send with an alert.
 */
export function selectProvider(env: Env, channel: Channel, fetchFn: typeof fetch): DeliveryProvider {
  const name = channel === 'whatsapp' ? env.WHATSAPP_PROVIDER : smsProviderName(env)
  if (name === 'console') {
    return consoleProvider(channel, channel === 'whatsapp' ? consoleUnreachable(env) : undefined)
  }
  if (channel === 'whatsapp' && name === 'meta') {
    const checked = metaConfig(env)
    if (checked.ok) return metaProvider(checked.config, fetchFn)
    return notConfigured(channel, 'meta', checked.reason)
  }
  if (channel === 'sms' && name === 'twilio') {
    const checked = twilioConfig(env)
    if (checked.ok) return twilioProvider(checked.config, fetchFn)
    return notConfigured(channel, 'twilio', checked.reason)
  }
  const setting =
    channel === 'whatsapp'
      ? 'WHATSAPP_PROVIDER must be "meta" or "console"'
      : 'SMS_PROVIDER must be "twilio" or "console" to send SMS'
  logEvent('error', `${channel}.provider_not_configured`, { reason: setting, alert: true })
  return unconfiguredProvider('unknown', channel)
}

function notConfigured(channel: Channel, provider: string, reason: string): DeliveryProvider {
  logEvent('error', `${channel}.provider_not_configured`, { provider, reason, alert: true })
  return unconfiguredProvider(provider, channel)
}
