import { env } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
import { countingEnv, expectStytchError, loginOrCreate, newProject, tableCounts } from './helpers'
import { loginCode, send } from './otp-helpers'

// Numbers that earn their holder money per message (toll fraud), all valid under the US allowlist.
const PREMIUM_RATE = '+19002345678'
const TOLL_FREE = '+18002345679'
const PERSONAL = '+15002345678'
const ORDINARY_US = '+12025550123' // FIXED_LINE_OR_MOBILE: US numbers do not tell the two apart
const UK_LANDLINE = '+442079460000' // FIXED_LINE
const BR_MOBILE = '+5511987654321' // MOBILE

const rowCounts = (projectId: string) =>
  tableCounts(['users', 'phones', 'otp_codes', 'deliveries', 'limit_counters'], { projectId })

describe('allowed_line_types', () => {
  it.each([
    [PREMIUM_RATE, 'premium rate'],
    [TOLL_FREE, 'toll free'],
    [PERSONAL, 'personal number'],
  ])('refuses %s (%s) by default with 400 invalid_phone_number before writing anything', async (number, kind) => {
    const p = await newProject('test')
    expect((await loginOrCreate({ phone_number: ORDINARY_US }, { project: p })).status).toBe(200) // warms the project cache
    const before = await rowCounts(p.id)
    const counting = countingEnv(env)
    const res = await loginOrCreate({ phone_number: number }, { project: p, env: counting.env })
    expectStytchError(res, 400, 'invalid_phone_number')
    expect(res.body.error_message).toContain(`a ${kind} number`)
    expect(res.body.error_message).toContain('allowed_line_types')
    expect(counting.d1()).toBe(0)
    expect(counting.queueSends).toEqual([])
    expect(counting.kvPuts).toEqual([])
    expect(await rowCounts(p.id)).toEqual(before)
  })

  it('applies to /send too, with or without a user', async () => {
    const p = await newProject('test')
    const { userId } = await loginCode(p, ORDINARY_US)
    expectStytchError(await send(p, { phone_number: TOLL_FREE }), 400, 'invalid_phone_number')
    expectStytchError(await send(p, { phone_number: PREMIUM_RATE, user_id: userId }), 400, 'invalid_phone_number')
  })

  it('lets mobile and fixed-line-or-mobile numbers through by default, and landlines only when listed', async () => {
    const all = { allowed_countries: '*' }
    const byDefault = await newProject('test', all)
    expect((await loginOrCreate({ phone_number: ORDINARY_US }, { project: byDefault })).status).toBe(200)
    expect((await loginOrCreate({ phone_number: BR_MOBILE }, { project: byDefault })).status).toBe(200)
    expectStytchError(
      await loginOrCreate({ phone_number: UK_LANDLINE }, { project: byDefault }),
      400,
      'invalid_phone_number',
    )
    const landlines = await newProject('test', { ...all, allowed_line_types: ['MOBILE', 'FIXED_LINE'] })
    expect((await loginOrCreate({ phone_number: UK_LANDLINE }, { project: landlines })).status).toBe(200)
    expectStytchError(
      await loginOrCreate({ phone_number: ORDINARY_US }, { project: landlines }),
      400,
      'invalid_phone_number',
    )
  })

  it('"*" allows every type', async () => {
    const p = await newProject('test', { allowed_line_types: '*' })
    for (const number of [PREMIUM_RATE, TOLL_FREE, PERSONAL]) {
      expect((await loginOrCreate({ phone_number: number }, { project: p })).status).toBe(200)
    }
  })

  it('exempts the sandbox number', async () => {
    const p = await newProject('test', { allowed_line_types: ['MOBILE'] })
    expect((await loginOrCreate({ phone_number: '+10000000000' }, { project: p })).status).toBe(200)
  })

  it('the country allowlist still answers first for a number outside it', async () => {
    const p = await newProject('test', { allowed_countries: ['CA'] })
    expectStytchError(
      await loginOrCreate({ phone_number: PREMIUM_RATE }, { project: p }),
      400,
      'invalid_phone_number_country_code',
    )
  })
})
