import { env } from 'cloudflare:workers'
import { describe, expect, it, vi } from 'vitest'
import { STATUS_MOVES_SQL } from '../src/db/deliveries'
import { call, callJson, expectStytchError, queryPlan } from './helpers'
import { deliveryRow, issueJob, metaEnv, metaSuccess, runQueue, signWebhook, statusPayload } from './whatsapp-helpers'

const PATH = '/v1/webhooks/whatsapp'

function handshake(query: Record<string, string>) {
  return call('GET', `${PATH}?${new URLSearchParams(query)}`, { project: null })
}

/** POSTs `body` as Meta does, signed unless `signature` says otherwise (null: no header). */
async function postWebhook(body: string, signature?: string | null) {
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  const value = signature === undefined ? await signWebhook(body) : signature
  if (value !== null) headers['x-hub-signature-256'] = value
  return call('POST', PATH, { project: null, rawBody: body, headers })
}

async function postStatuses(statuses: Parameters<typeof statusPayload>[0]) {
  const res = await postWebhook(JSON.stringify(statusPayload(statuses)))
  expect(res.status).toBe(200)
  return res
}

/** A delivery sent through the (mocked) Graph API, so its row carries `wamid`. */
async function sentDelivery(wamid: string): Promise<string> {
  const { job } = await issueJob()
  vi.spyOn(globalThis, 'fetch').mockResolvedValueOnce(metaSuccess(wamid))
  await runQueue([job], { env: metaEnv() })
  expect(await deliveryRow(job.id)).toMatchObject({ status: 'sent', wamid })
  return job.id
}

describe('GET /v1/webhooks/whatsapp: verification handshake', () => {
  it('echoes hub.challenge as the plain body when the verify token matches', async () => {
    const res = await handshake({
      'hub.mode': 'subscribe',
      'hub.challenge': '1158201444',
      'hub.verify_token': env.WHATSAPP_VERIFY_TOKEN,
    })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/)
    expect(await res.text()).toBe('1158201444')
  })

  it.each([
    ['a wrong verify token', { 'hub.mode': 'subscribe', 'hub.challenge': '1', 'hub.verify_token': 'wrong' }],
    ['no verify token', { 'hub.mode': 'subscribe', 'hub.challenge': '1' }],
    ['another mode', { 'hub.mode': 'unsubscribe', 'hub.challenge': '1', 'hub.verify_token': 'test-verify-token' }],
    ['no challenge', { 'hub.mode': 'subscribe', 'hub.verify_token': 'test-verify-token' }],
    [
      'a challenge that is markup',
      { 'hub.mode': 'subscribe', 'hub.challenge': '<script>', 'hub.verify_token': 'test-verify-token' },
    ],
  ])('refuses %s with a Stytch-shaped 403', async (_name, query) => {
    const res = await callJson('GET', `${PATH}?${new URLSearchParams(query)}`, { project: null })
    expectStytchError(res, 403, 'forbidden')
  })

  it('answers 503 when no verify token is configured', async () => {
    const res = await callJson('GET', `${PATH}?hub.mode=subscribe&hub.challenge=1&hub.verify_token=`, {
      project: null,
      env: { ...env, WHATSAPP_VERIFY_TOKEN: '' },
    })
    expectStytchError(res, 503, 'service_unavailable')
  })
})

describe('POST /v1/webhooks/whatsapp: signature', () => {
  it('accepts a correctly signed notification without project credentials', async () => {
    const res = await callJson('POST', PATH, {
      project: null,
      rawBody: JSON.stringify(statusPayload([])),
      headers: {
        'content-type': 'application/json',
        'x-hub-signature-256': await signWebhook(JSON.stringify(statusPayload([]))),
      },
    })
    expect(res.status).toBe(200)
    expect(res.body).toEqual({ request_id: expect.stringMatching(/^request-id-test-/), status_code: 200 })
  })

  it.each([
    ['missing', null],
    ['empty', ''],
    ['made with another secret', 'other-secret'],
    ['not sha256=', 'sha1=0123'],
    ['not hex', `sha256=${'z'.repeat(64)}`],
    ['too short', 'sha256=00'],
  ])('rejects a signature that is %s with 401 before parsing', async (_name, kind) => {
    const body = '{"this is": not json'
    const signature = kind === 'other-secret' ? await signWebhook(body, 'other-secret') : kind
    const res = await postWebhook(body, signature)
    expectStytchError(
      { status: res.status, headers: res.headers, body: await res.json() },
      401,
      'invalid_webhook_signature',
    )
  })

  it('rejects a signature of another body', async () => {
    const wamid = `wamid.tampered.${crypto.randomUUID()}`
    const id = await sentDelivery(wamid)
    const signed = JSON.stringify(statusPayload([{ id: wamid, status: 'delivered' }]))
    const tampered = JSON.stringify(statusPayload([{ id: wamid, status: 'read' }]))
    const res = await postWebhook(tampered, await signWebhook(signed))
    expect(res.status).toBe(401)
    expect(await deliveryRow(id)).toMatchObject({ status: 'sent' })
  })

  it('answers 400 to a signed body that is not JSON', async () => {
    const res = await postWebhook('not json')
    expectStytchError({ status: res.status, headers: res.headers, body: await res.json() }, 400, 'bad_request')
  })

  it('answers 200 to notifications it does not track (inbound messages, unknown statuses)', async () => {
    const inbound = {
      object: 'whatsapp_business_account',
      entry: [
        {
          id: '1',
          changes: [{ field: 'messages', value: { messages: [{ from: '12025550100', type: 'text' }] } }],
        },
      ],
    }
    expect((await postWebhook(JSON.stringify(inbound))).status).toBe(200)
    expect((await postWebhook(JSON.stringify({ object: 'page' }))).status).toBe(200)
    await postStatuses([{ id: 'wamid.unknown', status: 'deleted' }])
  })
})

describe('POST /v1/webhooks/whatsapp: delivery status', () => {
  it('moves a delivery forward: sent → delivered → read', async () => {
    const wamid = `wamid.forward.${crypto.randomUUID()}`
    const id = await sentDelivery(wamid)
    await postStatuses([{ id: wamid, status: 'sent' }])
    expect(await deliveryRow(id)).toMatchObject({ status: 'sent' })
    await postStatuses([{ id: wamid, status: 'delivered' }])
    expect(await deliveryRow(id)).toMatchObject({ status: 'delivered' })
    await postStatuses([{ id: wamid, status: 'read' }])
    expect(await deliveryRow(id)).toMatchObject({ status: 'read' })
  })

  it('never moves back: late and duplicate events are harmless', async () => {
    const wamid = `wamid.late.${crypto.randomUUID()}`
    const id = await sentDelivery(wamid)
    await postStatuses([{ id: wamid, status: 'read' }])
    await postStatuses([{ id: wamid, status: 'delivered' }])
    await postStatuses([{ id: wamid, status: 'sent' }])
    await postStatuses([{ id: wamid, status: 'read' }])
    await postStatuses([{ id: wamid, status: 'failed', errors: [{ code: 131026 }] }])
    expect(await deliveryRow(id)).toMatchObject({ status: 'read', error_code: null })
  })

  it('applies several statuses of one notification in any order', async () => {
    const wamid = `wamid.batch.${crypto.randomUUID()}`
    const id = await sentDelivery(wamid)
    await postStatuses([
      { id: wamid, status: 'read' },
      { id: wamid, status: 'delivered' },
      { id: wamid, status: 'sent' },
    ])
    expect(await deliveryRow(id)).toMatchObject({ status: 'read' })
  })

  it('records a failure with its error code', async () => {
    const wamid = `wamid.failed.${crypto.randomUUID()}`
    const id = await sentDelivery(wamid)
    await postStatuses([{ id: wamid, status: 'failed', errors: [{ code: 131026 }] }])
    expect(await deliveryRow(id)).toMatchObject({
      status: 'failed',
      error_code: 131026,
      error_detail: 'meta_status_failed',
    })
  })

  it('lets a delivery on another device win over an earlier failure', async () => {
    const wamid = `wamid.multidevice.${crypto.randomUUID()}`
    const id = await sentDelivery(wamid)
    await postStatuses([{ id: wamid, status: 'failed', errors: [{ code: 131000 }] }])
    await postStatuses([{ id: wamid, status: 'delivered' }])
    expect(await deliveryRow(id)).toMatchObject({ status: 'delivered' })
  })

  it('ignores statuses for messages it did not send', async () => {
    const wamid = `wamid.mine.${crypto.randomUUID()}`
    const id = await sentDelivery(wamid)
    await postStatuses([{ id: 'wamid.someone-else', status: 'read' }])
    expect(await deliveryRow(id)).toMatchObject({ status: 'sent' })
  })
})

describe('finding the delivery a status names', () => {
  it('is a lookup on the partial deliveries_wamid index, which holds only rows that have a message id', async () => {
    const lines = await queryPlan(`SELECT id FROM deliveries WHERE ${STATUS_MOVES_SQL}`, 'wamid.plan', 'whatsapp', 3)
    expect(lines).toEqual(['SEARCH deliveries USING INDEX deliveries_wamid (wamid=?)'])
    const { sql } = (await env.DB.prepare("SELECT sql FROM sqlite_master WHERE name = 'deliveries_wamid'").first<{
      sql: string
    }>()) ?? { sql: '' }
    expect(sql).toMatch(/WHERE wamid IS NOT NULL$/)
  })
})
