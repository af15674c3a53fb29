import { createExecutionContext, waitOnExecutionContext } from 'cloudflare:test'
import { env } from 'cloudflare:workers'
import { expect } from 'vitest'
import { countingBindings } from '../src/bench/storage-count'
import { open, sha256, toHex } from '../src/crypto'
import { Batch, type Handle } from '../src/db/batch'
import { clearProjectCache } from '../src/db/projects'
import { shardDb } from '../src/db/shard'
import { type DeliveryJob, DeliveryJobSchema, jobAad } from '../src/delivery/job'
import worker from '../src/index'
import type { UserStatus } from '../src/schemas'
import lenientLimits from './lenient-limits.json'

export interface TestProject {
  id: string
  secret: string
  env: 'test' | 'live'
  settings?: Record<string, unknown>
  /** The public token for /sdk/v1 (seedProject picks a random one when not given). */
  publicToken?: string
  /** The D1 shard holding the project's data: 0 (DB) unless given; 1 is DB_1. */
  shard?: number
}

/**
 * Abuse limits raised far beyond what any test sends (test/lenient-limits.json, shared with the
 * bench and load test), for tests about other features: they send
 * many codes to one phone, in parallel, to any country. The limits themselves are tested in
 * test/limits*.test.ts with projects of their own (newProject), which keep the safe defaults.
 */
export const LENIENT_LIMITS: Record<string, unknown> = lenientLimits

/**
 * The local development project documented in the README (local only). Tests seed it with
 * LENIENT_LIMITS; `npm run dev` seeds it with the defaults.
 */
export const TEST_PROJECT: TestProject = {
  id: 'project-test-00000000-0000-4000-8000-000000000000',
  secret: 'secret-test-local-development-only-0000000000',
  env: 'test',
  settings: LENIENT_LIMITS,
  publicToken: 'public-token-test-00000000-0000-4000-8000-000000000000',
}

/**
 * Creates (or resets) a project in the directory, on its shard (`project.shard`, 0 unless given) as
 * `npm run project:create -- --shard N` places it: the directory row in DB, and on another shard the
 * anchor row its foreign keys need.
 */
export async function seedProject(project: TestProject): Promise<TestProject & { publicToken: string }> {
  const hash = toHex(await sha256(project.secret))
  const publicToken = project.publicToken ?? `public-token-${project.env}-${crypto.randomUUID()}`
  const shard = project.shard ?? 0
  await env.DB.prepare(
    `INSERT INTO projects (id, env, name, secret_hash, settings, created_at, public_token, shard)
     VALUES (?1, ?2, 'test', ?3, ?4, ?5, ?6, ?7)
     ON CONFLICT (id) DO UPDATE SET secret_hash = excluded.secret_hash, settings = excluded.settings,
       public_token = excluded.public_token, shard = excluded.shard`,
  )
    .bind(project.id, project.env, hash, JSON.stringify(project.settings ?? {}), Date.now(), publicToken, shard)
    .run()
  if (shard !== 0) {
    await shardDb(env, shard)
      .prepare(
        `INSERT INTO projects (id, env, name, secret_hash, settings, created_at, shard)
         VALUES (?1, ?2, 'test', '', '{}', ?3, ?4) ON CONFLICT (id) DO NOTHING`,
      )
      .bind(project.id, project.env, Date.now(), shard)
      .run()
  }
  clearProjectCache()
  return { ...project, publicToken }
}

/** A fresh project of its own, so a test does not share rows or limits with others (on `shard`, 0 by default). */
export async function newProject(projectEnv: 'test' | 'live' = 'test', settings?: Record<string, unknown>, shard = 0) {
  return seedProject({
    id: `project-${projectEnv}-${crypto.randomUUID()}`,
    secret: `secret-${projectEnv}-${crypto.randomUUID()}`,
    env: projectEnv,
    ...(settings ? { settings } : {}),
    shard,
  })
}

export function basicAuth(project: Pick<TestProject, 'id' | 'secret'> = TEST_PROJECT): string {
  return `Basic ${btoa(`${project.id}:${project.secret}`)}`
}

export interface CallOptions {
  body?: unknown
  /** A raw body string sent as is (for malformed-JSON tests). */
  rawBody?: string | Uint8Array
  project?: Pick<TestProject, 'id' | 'secret'> | null
  headers?: Record<string, string>
  env?: Env
  /** The Worker whose fetch handler answers: src/index.ts unless given (the bench's entry, say). */
  worker?: { fetch: ExportedHandlerFetchHandler<Env> }
}

/** Calls the real Worker's fetch handler in workerd with the test bindings (or `options.env`). */
export async function call(method: string, path: string, options: CallOptions = {}): Promise<Response> {
  const headers = new Headers(options.headers)
  if (options.project !== null && !headers.has('authorization')) {
    headers.set('authorization', basicAuth(options.project ?? TEST_PROJECT))
  }
  let body: BodyInit | undefined
  if (options.rawBody !== undefined) body = options.rawBody
  else if (options.body !== undefined) {
    body = JSON.stringify(options.body)
    if (!headers.has('content-type')) headers.set('content-type', 'application/json')
  }
  const ctx = createExecutionContext()
  const res = await (options.worker ?? worker).fetch(
    new Request(`http://localhost${path}`, { method, headers, body }),
    options.env ?? env,
    ctx,
  )
  await waitOnExecutionContext(ctx)
  return res
}

export async function callJson<T = Record<string, unknown>>(method: string, path: string, options: CallOptions = {}) {
  const res = await call(method, path, options)
  expect(res.headers.get('content-type')).toMatch(/^application\/json/)
  return { status: res.status, headers: res.headers, body: (await res.json()) as T }
}

export const loginOrCreate = (body: unknown, options: CallOptions = {}) =>
  callJson('POST', '/v1/otps/whatsapp/login_or_create', { ...options, body })

export interface ExpectedUser {
  userId: string
  /** The user's one phone. */
  phoneId: string
  phoneNumber: string
  verified: boolean
  status?: UserStatus
  createdAt: string
  name?: { first_name?: string; middle_name?: string; last_name?: string }
  trustedMetadata?: Record<string, unknown>
  untrustedMetadata?: Record<string, unknown>
  externalId?: string
}

/**
 * Stytch's User object exactly as the service returns it for a user with one phone number: every
 * field Stytch has, the ones this service has no factor for empty, the rest from `u` (an active,
 * unnamed, unlocked user without metadata or external id unless it says otherwise).
 */
export function expectedUser(u: ExpectedUser): Record<string, unknown> {
  return {
    user_id: u.userId,
    emails: [],
    status: u.status ?? 'active',
    phone_numbers: [{ phone_id: u.phoneId, phone_number: u.phoneNumber, verified: u.verified }],
    webauthn_registrations: [],
    providers: [],
    totps: [],
    crypto_wallets: [],
    biometric_registrations: [],
    is_locked: false,
    roles: [],
    name: { first_name: '', middle_name: '', last_name: '', ...u.name },
    created_at: u.createdAt,
    trusted_metadata: u.trustedMetadata ?? {},
    untrusted_metadata: u.untrustedMetadata ?? {},
    ...(u.externalId === undefined ? {} : { external_id: u.externalId }),
  }
}

/** Asserts the Stytch error shape and returns the body. */
export function expectStytchError(
  result: { status: number; headers: Headers; body: Record<string, unknown> },
  status: number,
  errorType: string,
) {
  expect(result.status).toBe(status)
  expect(result.body).toEqual({
    status_code: status,
    request_id: expect.stringMatching(/^request-id-(test|live)-[0-9a-f-]{36}$/),
    error_type: errorType,
    error_message: expect.any(String),
    error_url: expect.stringContaining('https://stytch.com/docs/api/errors/'),
  })
  expect(result.headers.get('x-request-id')).toBe(result.body.request_id)
  expect(result.body).not.toHaveProperty('error')
  return result.body
}

/**
 * Wraps env so every D1 round trip is counted (the bench's own counting, src/bench/storage-count.ts)
 * and every queued body and KV key written is recorded.
 */
export function countingEnv(base: Env = env): { env: Env; d1: () => number; queueSends: unknown[]; kvPuts: string[] } {
  const { env: counted, counts } = countingBindings(base)
  const queueSends: unknown[] = []
  const kvPuts: string[] = []
  const queue: Queue = {
    send: async (body: unknown, opts?: QueueSendOptions) => {
      queueSends.push(body)
      return counted.WHATSAPP_QUEUE.send(body, opts)
    },
    sendBatch: async (msgs: Iterable<MessageSendRequest>, opts?: QueueSendBatchOptions) => {
      for (const m of msgs) queueSends.push(m.body)
      return counted.WHATSAPP_QUEUE.sendBatch(msgs, opts)
    },
  } as Queue
  const kv = new Proxy(counted.OTP_KV, {
    get(target, prop, receiver) {
      if (prop === 'put') {
        return (key: string, ...rest: unknown[]) => {
          kvPuts.push(key)
          return (target.put as (...a: unknown[]) => Promise<void>)(key, ...rest)
        }
      }
      const value = Reflect.get(target, prop, receiver)
      return typeof value === 'function' ? value.bind(target) : value
    },
  })
  return { env: { ...counted, WHATSAPP_QUEUE: queue, OTP_KV: kv }, d1: () => counts.d1, queueSends, kvPuts }
}

/** A queue binding that only records what is sent, so miniflare's own consumer never sees the job. */
export function capturingQueue(sent: unknown[]): Queue {
  const metadata = { metrics: { backlogCount: 0, backlogBytes: 0 } }
  return {
    metrics: async () => ({ backlogCount: 0, backlogBytes: 0 }),
    send: async (body: unknown) => {
      sent.push(body)
      return { metadata }
    },
    sendBatch: async (messages: Iterable<MessageSendRequest>) => {
      for (const m of messages) sent.push(m.body)
      return { metadata }
    },
  }
}

/** A queue binding that records what is sent and passes it on to `queue`, whose consumer runs as usual. */
function recordingQueue(sent: unknown[], queue: Queue): Queue {
  return {
    metrics: () => queue.metrics(),
    send: async (body: unknown, opts?: QueueSendOptions) => {
      sent.push(body)
      return queue.send(body, opts)
    },
    sendBatch: async (messages: Iterable<MessageSendRequest>, opts?: QueueSendBatchOptions) => {
      const list = [...messages]
      for (const m of list) sent.push(m.body)
      return queue.sendBatch(list, opts)
    },
  }
}

export interface IssuedCode {
  status: number
  headers: Headers
  body: Record<string, unknown>
  /** The delivery job the request queued, and the plain code sealed in it. */
  job: DeliveryJob
  code: string
  codeId: string
  phoneId: string
  userId: string
}

export interface IssueOptions {
  /**
   * The route: login_or_create (the default) or send under /v1/otps/whatsapp, or a whole path (an
   * /sdk/v1 route, whose reply is { data: { method_id } }).
   */
  path?: 'login_or_create' | 'send' | `/${string}`
  /** Request headers (an Authorization here replaces the project's Basic credentials). */
  headers?: Record<string, string>
  /** The channel's route under /v1/otps: whatsapp (the default) or sms. */
  channel?: 'whatsapp' | 'sms'
  /** The bindings (the test bindings unless given); the code is decrypted with their key. */
  env?: Env
  /**
   * false: the job is only recorded, never queued, so no consumer delivers it (for tests that run
   * the consumer themselves). Otherwise it is also queued and delivered as usual.
   */
  deliver?: boolean
  /** The Worker that answers (src/index.ts unless given). */
  worker?: CallOptions['worker']
}

/**
 * Issues a code through the real route and returns the reply with the plain code, read the way the
 * consumer reads it: by decrypting the one delivery job the request queued. Every test helper that
 * needs a live code goes through here.
 */
export async function issueCode(
  project: TestProject,
  body: Record<string, unknown>,
  options: IssueOptions = {},
): Promise<IssuedCode> {
  const bindings = options.env ?? env
  const sent: unknown[] = []
  const queue = options.deliver === false ? capturingQueue(sent) : recordingQueue(sent, bindings.WHATSAPP_QUEUE)
  const path = options.path ?? 'login_or_create'
  const route = path.startsWith('/') ? path : `/v1/otps/${options.channel ?? 'whatsapp'}/${path}`
  const res = await callJson('POST', route, {
    project,
    body,
    env: { ...bindings, WHATSAPP_QUEUE: queue },
    ...(options.headers ? { headers: options.headers } : {}),
    ...(options.worker ? { worker: options.worker } : {}),
  })
  expect(res.status, JSON.stringify(res.body)).toBe(200)
  expect(sent).toHaveLength(1)
  const job = DeliveryJobSchema.parse(sent[0])
  const code = await open(bindings.CODE_ENCRYPTION_KEY, job.code, jobAad(job))
  const sdkReply = res.body.data as { method_id?: string } | undefined
  return {
    ...res,
    job,
    code,
    codeId: job.id,
    phoneId: String(sdkReply?.method_id ?? res.body.phone_id),
    userId: String(res.body.user_id),
  }
}

/**
 * Runs `select` (a query over the table, to which ` WHERE project_id = ?1` is added with
 * `projectId`) for each table in one D1 batch, and maps each table's result with `read`.
 */
async function perTable<T, R>(
  tables: readonly string[],
  select: (table: string, where: string) => string,
  read: (handle: Handle<T>) => R,
  { projectId, db = env.DB }: { projectId?: string; db?: D1Database },
): Promise<Record<string, R>> {
  const batch = new Batch()
  const where = projectId ? ' WHERE project_id = ?1' : ''
  const handles = tables.map((t) => {
    const statement = db.prepare(select(t, where))
    return [t, batch.add<T>(projectId ? statement.bind(projectId) : statement)] as const
  })
  await batch.run(db)
  return Object.fromEntries(handles.map(([t, h]) => [t, read(h)]))
}

/**
 * Each table's rows in a stable order, keyed by table name; with `projectId` only that project's;
 * from `db` (the DB binding, shard 0, unless given).
 */
export function tableRows<T = Record<string, unknown>>(
  tables: readonly string[],
  options: { projectId?: string; db?: D1Database } = {},
): Promise<Record<string, T[]>> {
  return perTable<T, T[]>(
    tables,
    (t, where) => `SELECT * FROM ${t}${where} ORDER BY 1, 2, 3`,
    (h) => h.rows(),
    options,
  )
}

/** The lines (`detail`) of SQLite's query plan for `sql` bound to `params`, in the test database. */
export async function queryPlan(sql: string, ...params: unknown[]): Promise<string[]> {
  const res = await env.DB.prepare(`EXPLAIN QUERY PLAN ${sql}`)
    .bind(...params)
    .all<{ detail: string }>()
  return res.results.map((r) => r.detail)
}

/** Each table's row count, keyed by table name; with `projectId` only that project's rows; from `db`. */
export function tableCounts(
  tables: readonly string[],
  options: { projectId?: string; db?: D1Database } = {},
): Promise<Record<string, number>> {
  return perTable<{ n: number }, number>(
    tables,
    (t, where) => `SELECT COUNT(*) AS n FROM ${t}${where}`,
    (h) => Number(h.first()?.n),
    options,
  )
}
