import { env } from 'cloudflare:workers'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { call, callJson, expectStytchError, loginOrCreate, newProject } from './helpers'
import { capturingQueue, deliveryRow, freshPhone, issueJob, metaEnv, runQueue } from './whatsapp-helpers'

interface OutboxBody {
  messages: {
    id: string
    phone_number: string
    code: string
    locale: string
    text: string
    created_at: string
  }[]
}

const outbox = <T = OutboxBody>(query = '', options: { env?: Env } = {}) =>
  callJson<T>('GET', `/dev/whatsapp/outbox${query}`, { project: null, ...options })

afterEach(() => {
  vi.useRealTimers()
  vi.restoreAllMocks()
})

/** Issues a code and runs the consumer on its job with the console provider (the test default). */
async function deliverViaConsole(options: Parameters<typeof issueJob>[0] = {}) {
  const issued = await issueJob(options)
  const { result, ids } = await runQueue([issued.job])
  expect(result.explicitAcks).toEqual(ids)
  return issued
}

describe('GET /dev/whatsapp/outbox', () => {
  it('lists console deliveries newest first, with the code in the message text', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    const a = freshPhone()
    const b = freshPhone()
    const first = await deliverViaConsole({ phoneNumber: a })
    vi.setSystemTime(Date.now() + 1_000)
    const second = await deliverViaConsole({ phoneNumber: b, extra: { locale: 'es' } })
    vi.setSystemTime(Date.now() + 1_000)
    const third = await deliverViaConsole({
      phoneNumber: a,
      project: first.project,
      extra: { locale: 'pt-br' },
    })

    const res = await outbox()
    expect(res.status).toBe(200)
    const mine = res.body.messages.filter((m) => m.phone_number === a || m.phone_number === b)
    expect(mine.map((m) => m.code)).toEqual([third.code, second.code, first.code])
    expect(mine[0]).toEqual({
      id: third.job.id,
      phone_number: a,
      code: third.code,
      locale: 'pt-br',
      text: `${third.code} é o seu código de verificação. Para sua segurança, não o compartilhe.`,
      created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/),
    })
    expect(mine[1]?.text).toBe(
      `${second.code} es tu código de verificación. Por tu seguridad, no lo compartas.`,
    )
    expect(mine[2]?.text).toBe(
      `${first.code} is your verification code. For your security, do not share this code.`,
    )
    expect(await deliveryRow(third.job.id)).toMatchObject({
      status: 'sent',
      provider: 'console',
      wamid: null,
    })
  })

  it.each([
    ['a "+" typed as is', (p: string) => p],
    ['an encoded "+"', (p: string) => encodeURIComponent(p)],
    ['no "+"', (p: string) => p.slice(1)],
  ])('filters by ?phone_number= written with %s', async (_name, write) => {
    const phone = freshPhone()
    const other = await deliverViaConsole()
    const mine = await deliverViaConsole({ phoneNumber: phone, project: other.project })
    const res = await outbox(`?phone_number=${write(phone)}`)
    expect(res.status).toBe(200)
    expect(res.body.messages.map((m) => m.code)).toEqual([mine.code])
  })

  it('rejects a phone_number that is not one', async () => {
    expectStytchError(
      await outbox<Record<string, unknown>>('?phone_number=call-me'),
      400,
      'invalid_phone_number',
    )
  })

  it('caps the list with ?limit=', async () => {
    await deliverViaConsole()
    await deliverViaConsole()
    const res = await outbox('?limit=1')
    expect(res.body.messages).toHaveLength(1)
  })

  it('needs no credentials but does not exist unless the console provider is active', async () => {
    for (const provider of ['meta', '', 'Console']) {
      const res = await outbox<Record<string, unknown>>('', { env: metaEnv({ WHATSAPP_PROVIDER: provider }) })
      expectStytchError(res, 404, 'route_not_found')
      const post = await callJson('POST', '/dev/whatsapp/outbox', {
        project: null,
        env: metaEnv({ WHATSAPP_PROVIDER: provider }),
      })
      expectStytchError(post, 404, 'route_not_found')
    }
    expect((await outbox()).status).toBe(200)
  })
})

describe('end to end: login_or_create → queue consumer → outbox', () => {
  it('delivers the issued code through the app and the worker queue handler', async () => {
    const project = await newProject('test')
    const phone = freshPhone()
    const sent: unknown[] = []
    const res = await loginOrCreate(
      { phone_number: phone, locale: 'fr' },
      { project, env: { ...env, WHATSAPP_QUEUE: capturingQueue(sent) } },
    )
    expect(res.status).toBe(200)
    expect(sent).toHaveLength(1)

    const { result, ids } = await runQueue(sent)
    expect(result.explicitAcks).toEqual(ids)

    const { body } = await outbox(`?phone_number=${encodeURIComponent(phone)}`)
    expect(body.messages).toHaveLength(1)
    const [message] = body.messages
    expect(message?.code).toMatch(/^\d{6}$/)
    expect(message?.text).toContain(`${message?.code} est votre code de vérification.`)
    expect(message?.locale).toBe('fr')
  })

  it('delivers through the real local queue, as `npm run dev` does', async () => {
    const project = await newProject('test')
    const phone = freshPhone()
    const res = await loginOrCreate({ phone_number: phone }, { project })
    expect(res.status).toBe(200)

    // wrangler.toml's consumer (max_batch_timeout 1 s) picks the job up in the background.
    const message = await vi.waitFor(
      async () => {
        const { body } = await outbox(`?phone_number=${encodeURIComponent(phone)}`)
        const [first] = body.messages
        if (!first) throw new Error('not delivered yet')
        return first
      },
      { timeout: 10_000, interval: 100 },
    )
    expect(message.code).toMatch(/^\d{6}$/)
    expect(message.phone_number).toBe(phone)
    const row = await env.DB.prepare(`SELECT status, provider FROM deliveries WHERE phone_id = ?1`)
      .bind(res.body.phone_id)
      .first()
    expect(row).toEqual({ status: 'sent', provider: 'console' })
  })

  it('is reachable without the console provider only as a 404, even right after a delivery', async () => {
    const { code } = await deliverViaConsole()
    const res = await call('GET', '/dev/whatsapp/outbox', { project: null, env: metaEnv() })
    expect(res.status).toBe(404)
    const text = await res.text()
    expect(JSON.parse(text)).toMatchObject({ error_type: 'route_not_found' })
    expect(text).not.toContain(code)
  })
})
