import type { Channel } from '../delivery/job'
import { StytchError } from '../errors'
import type { ParsedPhone } from '../phone'
import type { LineType, ProjectSettings } from '../settings'

/**
 * Who may receive a code on a channel: the project's allowlists of destination countries and line
 * types. WhatsApp and SMS each have their own (allowed_countries / allowed_line_types and
 * sms_allowed_countries / sms_allowed_line_types): SMS is the channel toll fraud attacks, so a
 * project can keep it narrower than WhatsApp.
 */
export function channelPolicy(settings: ProjectSettings, channel: Channel) {
  return channel === 'sms'
    ? { countries: settings.sms_allowed_countries, lineTypes: settings.sms_allowed_line_types }
    : { countries: settings.allowed_countries, lineTypes: settings.allowed_line_types }
}

/**
 * Refuses a number the channel's allowlists exclude, before anything is written: a country outside
 * the list is `400 invalid_phone_number_country_code` (numbers without a country, NON_GEOGRAPHIC,
 * pass only with "*"); a line type outside it is `400 invalid_phone_number`. Premium-rate,
 * toll-free, personal and similar numbers earn their holder money per message, a favourite of toll
 * fraud; a number whose type libphonenumber cannot tell is allowed only with "*".
 */
export function assertChannelAllows(
  settings: ProjectSettings,
  channel: Channel,
  phone: ParsedPhone,
  country: string,
): void {
  const { countries, lineTypes } = channelPolicy(settings, channel)
  if (countries !== '*' && !countries.includes(country)) throw new StytchError('invalid_phone_number_country_code')
  const type: LineType | null = phone.type
  if (lineTypes === '*' || (type !== null && lineTypes.includes(type))) return
  const kind = type === null ? 'of an unknown type' : `a ${type.toLowerCase().replaceAll('_', ' ')} number`
  const setting = channel === 'sms' ? 'sms_allowed_line_types' : 'allowed_line_types'
  throw new StytchError('invalid_phone_number', {
    message: `The phone number is ${kind}, and this project does not send codes to that type of number (${setting}).`,
  })
}
