import { env } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
import { countingEnv, loginOrCreate } from './helpers'

describe('POST /v1/otps/whatsapp/login_or_create', () => {
  it('creates a user for a new phone and returns exactly the five fields', async () => {
    const res = await loginOrCreate({ phone_number: '+12025550123' })
    expect(res.status).toBe(200)
    expect(Object.keys(res.body).sort()).toEqual(['phone_id', 'request_id', 'status_code', 'user_created', 'user_id'])
    expect(res.body).toMatchObject({ status_code: 200, user_created: true })
    expect(res.body.user_id).toMatch(/^user-test-[0-9a-f-]{36}$/)
    expect(res.body.phone_id).toMatch(/^phone-number-test-[0-9a-f-]{36}$/)
    const again = await loginOrCreate({ phone_number: '+12025550123' })
    expect(again.body).toMatchObject({ user_id: res.body.user_id, phone_id: res.body.phone_id, user_created: false })
  })

  it('is one D1 round trip, one KV write and one queue send', async () => {
    const counting = countingEnv(env)
    await loginOrCreate({ phone_number: '+12025550124' }) // warm the project cache
    const before = counting.d1()
    const res = await loginOrCreate({ phone_number: '+12025550125' }, { env: counting.env })
    expect(res.status).toBe(200)
    expect(counting.d1() - before).toBe(1)
    expect(counting.kvPuts).toEqual([`otp:${res.body.phone_id}`])
    expect(counting.queueSends).toHaveLength(1)
  })
})
