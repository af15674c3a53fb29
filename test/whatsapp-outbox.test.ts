import { createExecutionContext, waitOnExecutionContext } from 'cloudflare:test'
import { env } from 'cloudflare:workers'
import { describe, expect, it, vi } from 'vitest'
import worker from '../src/index'
import { basicAuth, call, callJson, expectStytchError, loginOrCreate, newProject, type TestProject } from './helpers'
import { capturingQueue, deliveryRow, freshPhone, issueJob, metaEnv, runQueue } from './whatsapp-helpers'

interface OutboxBody {
  messages: {
    id: string
    channel: string
    phone_number: string
    code: string
    locale: string
    text: string
    created_at: string
  }[]
}

/** The outbox as the test project `p` reads it. */
const outbox = <T = OutboxBody>(p: TestProject, query = '', options: { env?: Env } = {}) =>
  callJson<T>('GET', `/dev/whatsapp/outbox${query}`, { project: p, ...options })

/** GET /dev/whatsapp/outbox at `url` (its host is the URL's), with an optional Host header. */
async function outboxAt(url: string, p: TestProject, host?: string): Promise<Response> {
  const headers = new Headers({ authorization: basicAuth(p) })
  if (host !== undefined) headers.set('host', host)
  const ctx = createExecutionContext()
  const res = await worker.fetch(new Request(url, { headers }), env, ctx)
  await waitOnExecutionContext(ctx)
  return res
}

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
    const second = await deliverViaConsole({ phoneNumber: b, project: first.project, extra: { locale: 'es' } })
    vi.setSystemTime(Date.now() + 1_000)
    const third = await deliverViaConsole({
      phoneNumber: a,
      project: first.project,
      extra: { locale: 'pt-br' },
    })

    const res = await outbox(first.project)
    expect(res.status).toBe(200)
    const mine = res.body.messages
    expect(mine.map((m) => m.code)).toEqual([third.code, second.code, first.code])
    expect(mine[0]).toEqual({
      id: third.job.id,
      channel: 'whatsapp',
      phone_number: a,
      code: third.code,
      locale: 'pt-br',
      text: `${third.code} é o seu código de verificação. Para sua segurança, não o compartilhe.`,
      created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/),
    })
    expect(mine[1]?.text).toBe(`${second.code} es tu código de verificación. Por tu seguridad, no lo compartas.`)
    expect(mine[2]?.text).toBe(`${first.code} is your verification code. For your security, do not share this code.`)
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
    const res = await outbox(mine.project, `?phone_number=${write(phone)}`)
    expect(res.status).toBe(200)
    expect(res.body.messages.map((m) => m.code)).toEqual([mine.code])
  })

  it('rejects a phone_number that is not one', async () => {
    expectStytchError(
      await outbox<Record<string, unknown>>(await newProject(), '?phone_number=call-me'),
      400,
      'invalid_phone_number',
    )
  })

  it('caps the list with ?limit=', async () => {
    const { project } = await deliverViaConsole()
    await deliverViaConsole({ project })
    const res = await outbox(project, '?limit=1')
    expect(res.body.messages).toHaveLength(1)
  })

  it('does not exist unless a console provider is active, whatever the credentials', async () => {
    const { project } = await deliverViaConsole()
    for (const [whatsapp, sms] of [
      ['meta', 'none'],
      ['meta', 'twilio'],
      ['', ''],
      ['Console', 'CONSOLE'],
    ]) {
      const e = metaEnv({ WHATSAPP_PROVIDER: whatsapp, SMS_PROVIDER: sms })
      for (const path of ['/dev/whatsapp/outbox', '/dev/outbox']) {
        expectStytchError(await callJson('GET', path, { project, env: e }), 404, 'route_not_found')
        expectStytchError(await callJson('POST', path, { project, env: e }), 404, 'route_not_found')
      }
    }
    // Either console provider opens it: its messages are the project's of both channels.
    expect((await outbox(project, '', { env: metaEnv({ SMS_PROVIDER: 'console' }) })).status).toBe(200)
    expect(
      (await outbox(project, '', { env: metaEnv({ WHATSAPP_PROVIDER: 'console', SMS_PROVIDER: 'none' }) })).status,
    ).toBe(200)
  })

  it("shows a test project its own messages only, never another project's", async () => {
    const a = await deliverViaConsole()
    const b = await deliverViaConsole({ phoneNumber: a.phoneNumber })
    const ofA = await outbox(a.project)
    expect(ofA.body.messages.map((m) => m.code)).toEqual([a.code])
    const ofB = await outbox(b.project, `?phone_number=${encodeURIComponent(a.phoneNumber)}`)
    expect(ofB.body.messages.map((m) => m.id)).toEqual([b.job.id])
  })

  it('refuses missing or wrong credentials (401) and the credentials of a live project (403)', async () => {
    const { project, code } = await deliverViaConsole()
    const none = await call('GET', '/dev/whatsapp/outbox', { project: null })
    expect(none.status).toBe(401)
    const noneText = await none.text()
    expect(JSON.parse(noneText)).toMatchObject({ error_type: 'unauthorized_credentials' })
    expect(noneText).not.toContain(code)
    const wrongSecret = { ...project, secret: `secret-test-${crypto.randomUUID()}` }
    expectStytchError(await outbox<Record<string, unknown>>(wrongSecret), 401, 'unauthorized_credentials')
    const live = await newProject('live')
    expectStytchError(await outbox<Record<string, unknown>>(live), 403, 'forbidden')
  })

  it.each([
    ['a public name', 'http://attacker.example/dev/whatsapp/outbox', undefined],
    ['a rebound name whose Host header says so', 'http://localhost/dev/whatsapp/outbox', 'attacker.example:8787'],
    ['a name that only starts like localhost', 'http://localhost.attacker.example/dev/whatsapp/outbox', undefined],
    ['a name ending in 127.0.0.1', 'http://localhost/dev/whatsapp/outbox', '127.0.0.1.nip.io'],
    ['a private address', 'http://localhost/dev/whatsapp/outbox', '192.168.1.20:8787'],
    ['the unspecified address', 'http://localhost/dev/whatsapp/outbox', '0.0.0.0:8787'],
    ['another IPv6 address', 'http://localhost/dev/whatsapp/outbox', '[::2]:8787'],
  ])('answers 404 to a request addressed to %s, even with valid credentials', async (_name, url, host) => {
    const { project, code } = await deliverViaConsole()
    const res = await outboxAt(url, project, host)
    expect(res.status).toBe(404)
    const text = await res.text()
    expect(JSON.parse(text)).toMatchObject({ error_type: 'route_not_found' })
    expect(text).not.toContain(code)
  })

  it.each([
    ['localhost with a port', 'http://localhost:8787/dev/whatsapp/outbox', 'localhost:8787'],
    ['127.0.0.1', 'http://127.0.0.1:8787/dev/whatsapp/outbox', '127.0.0.1:8787'],
    ['another 127/8 address', 'http://127.3.2.1/dev/whatsapp/outbox', '127.3.2.1'],
    ['::1', 'http://[::1]:8787/dev/whatsapp/outbox', '[::1]:8787'],
    ['an IPv4-mapped loopback', 'http://[::ffff:127.0.0.1]/dev/whatsapp/outbox', '[::ffff:127.0.0.1]'],
    ['a name under .localhost', 'http://otp.localhost:8787/dev/whatsapp/outbox', 'otp.localhost:8787'],
  ])('answers a request addressed to %s', async (_name, url, host) => {
    const { project, code } = await deliverViaConsole()
    const res = await outboxAt(url, project, host)
    expect(res.status).toBe(200)
    expect(((await res.json()) as OutboxBody).messages.map((m) => m.code)).toEqual([code])
  })
})

describe('the console provider and live projects', () => {
  it("refuses to deliver a live project's code: no outbox row, no log line, a failed delivery with an alert", async () => {
    const live = await newProject('live', { allowed_countries: '*' })
    const { job, code } = await issueJob({ project: live })
    const log = vi.spyOn(console, 'log')
    const { result, ids } = await runQueue([job])
    expect(result.explicitAcks).toEqual(ids)
    expect(await deliveryRow(job.id)).toMatchObject({ status: 'failed', error_detail: 'console_provider_live_project' })
    const rows = await env.DB.prepare('SELECT count(*) AS n FROM dev_outbox WHERE id = ?1')
      .bind(job.id)
      .first<{ n: number }>()
    expect(rows?.n).toBe(0)
    expect(log.mock.calls.flat().join('\n')).not.toContain(code)
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

    const { body } = await outbox(project, `?phone_number=${encodeURIComponent(phone)}`)
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
        const { body } = await outbox(project, `?phone_number=${encodeURIComponent(phone)}`)
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
    const { code, project } = await deliverViaConsole()
    const res = await call('GET', '/dev/whatsapp/outbox', { project, env: metaEnv({ SMS_PROVIDER: 'none' }) })
    expect(res.status).toBe(404)
    const text = await res.text()
    expect(JSON.parse(text)).toMatchObject({ error_type: 'route_not_found' })
    expect(text).not.toContain(code)
  })
})
