import { applyD1Migrations, reset } from 'cloudflare:test'
import { env } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'

/**
 * migrations/ is what every database is built from; schema.sql is the readable whole. These tests
 * keep the two equal and show that migrating a database that holds data keeps the data.
 */

const OWN_OBJECTS = `substr(name, 1, 7) != 'sqlite_' AND substr(name, 1, 4) != '_cf_' AND name != 'd1_migrations'`

/** SQL as SQLite keeps it, without comments and layout (an added column is appended as `, col ...)`). */
const normalized = (sql: string | null) =>
  (sql ?? '')
    .replace(/--[^\n]*/g, '')
    .replace(/\s+/g, ' ')
    .replace(/\s*([(),])\s*/g, '$1')
    .trim()

/** Every table and index of the database with its SQL, columns, foreign keys and index columns. */
async function schemaOf(db: D1Database): Promise<Record<string, unknown>> {
  const { results } = await db
    .prepare(`SELECT type, name, tbl_name, sql FROM sqlite_master WHERE ${OWN_OBJECTS} ORDER BY type, name`)
    .all<{ type: string; name: string; tbl_name: string; sql: string | null }>()
  const schema: Record<string, unknown> = {}
  for (const object of results) {
    const details =
      object.type === 'table'
        ? {
            columns: (await db.prepare('SELECT * FROM pragma_table_xinfo(?1)').bind(object.name).all()).results,
            foreignKeys: (await db.prepare('SELECT * FROM pragma_foreign_key_list(?1)').bind(object.name).all())
              .results,
          }
        : { columns: (await db.prepare('SELECT * FROM pragma_index_xinfo(?1)').bind(object.name).all()).results }
    schema[`${object.type} ${object.name}`] = { table: object.tbl_name, sql: normalized(object.sql), ...details }
  }
  return schema
}

async function emptyDatabase(): Promise<void> {
  await reset()
  expect(await schemaOf(env.DB)).toEqual({})
}

const applySchemaFile = () => env.DB.batch(env.TEST_SCHEMA.map((q) => env.DB.prepare(q)))

const migrationNames = () => env.TEST_MIGRATIONS.map((m) => m.name)

/**
 * Tables of the first migration that a later contract migration drops, once no Worker version
 * reads or writes them (their rows go with them), and the migration that drops each.
 */
const DROPPED: Record<string, string> = { limit_events: '0012_drop_limit_events.sql' }

async function recordedMigrations(): Promise<string[]> {
  const { results } = await env.DB.prepare('SELECT name FROM d1_migrations ORDER BY id').all<{ name: string }>()
  return results.map((r) => r.name)
}

/**
 * One row in every table of the first migration, references consistent. The code is live (it expires
 * in 2100): a migration may clear what only expired or used codes held, never what a live one needs.
 */
async function seedFirstSchema(): Promise<void> {
  const t = 1_764_000_000_000
  const LIVE = 4_102_444_800_000
  await env.DB.batch(
    [
      `INSERT INTO projects (id, env, name, secret_hash, settings, created_at)
       VALUES ('project-test-m', 'test', 'M', 'ab', '{"otp_max_attempts":3}', ${t})`,
      `INSERT INTO users (id, project_id, status, created_at, failed_authentications, lock_created_at, locked_until)
       VALUES ('user-test-m', 'project-test-m', 'active', ${t}, 2, ${t}, ${t + 1})`,
      `INSERT INTO phones (id, project_id, user_id, phone_number, verified, attach_expires_at, created_at)
       VALUES ('phone-number-test-m', 'project-test-m', 'user-test-m', '+15005550006', 1, NULL, ${t})`,
      `INSERT INTO otp_codes (phone_id, project_id, code_id, mac, expires_at, attempts, consumed_at, consumed_by,
         ip_address, user_agent, created_at)
       VALUES ('phone-number-test-m', 'project-test-m', 'code-m', 'mac-m', ${LIVE}, 1, NULL, NULL,
         '203.0.113.7', 'agent', ${t})`,
      `INSERT INTO deliveries (id, project_id, phone_id, provider, status, wamid, attempts, error_code, error_detail,
         lease_until, expires_at, created_at, updated_at)
       VALUES ('code-m', 'project-test-m', 'phone-number-test-m', 'meta', 'delivered', 'wamid.m', 1, NULL, NULL,
         NULL, ${t + 120_000}, ${t}, ${t + 3})`,
      `INSERT INTO dev_outbox (id, phone_number, code, locale, text, created_at)
       VALUES ('code-m', '+15005550006', '123456', 'en', '123456 is your verification code.', ${t})`,
      `INSERT INTO limit_events (project_id, kind, subject, at, expires_at)
       VALUES ('project-test-m', 'phone', '+15005550006', ${t}, ${t + 86_400_000})`,
      `INSERT INTO session_signing_keys (kid, project_id, public_jwk, private_key_iv, private_key_ct, created_at, retired_at)
       VALUES ('jwk-test-m', 'project-test-m', '{}', 'iv', 'ct', ${t}, NULL)`,
      `INSERT INTO sessions (id, project_id, user_id, token_hash, started_at, last_accessed_at, expires_at,
         ip_address, user_agent, custom_claims)
       VALUES ('session-test-m', 'project-test-m', 'user-test-m', 'hash-m', ${t}, ${t}, ${t + 3_600_000},
         '203.0.113.7', 'agent', '{"role":"a"}')`,
      `INSERT INTO session_factors (session_id, type, delivery_method, phone_id, phone_number, created_at,
         last_authenticated_at, updated_at)
       VALUES ('session-test-m', 'otp', 'whatsapp', 'phone-number-test-m', '+15005550006', ${t}, ${t}, ${t})`,
    ].map((sql) => env.DB.prepare(sql)),
  )
}

async function tableNames(): Promise<string[]> {
  const { results } = await env.DB.prepare(
    `SELECT name FROM sqlite_master WHERE type = 'table' AND ${OWN_OBJECTS} ORDER BY name`,
  ).all<{ name: string }>()
  return results.map((r) => r.name)
}

/** Every row of every table, only the columns it has now (later migrations may add columns). */
async function snapshot(tables: string[]): Promise<Record<string, Record<string, unknown>[]>> {
  const rows: Record<string, Record<string, unknown>[]> = {}
  for (const table of tables) rows[table] = (await env.DB.prepare(`SELECT * FROM ${table} ORDER BY 1`).all()).results
  return rows
}

describe('D1 migrations', () => {
  it('start with 0001_initial.sql and are applied in file-name order', () => {
    const names = migrationNames()
    expect(names[0]).toBe('0001_initial.sql')
    expect([...names].sort()).toEqual(names)
    for (const name of names) expect(name).toMatch(/^[0-9]{4}_[a-z0-9_]+\.sql$/)
  })

  it('build on an empty database exactly the schema schema.sql describes', async () => {
    await emptyDatabase()
    await applyD1Migrations(env.DB, env.TEST_MIGRATIONS)
    const migrated = await schemaOf(env.DB)
    expect(await recordedMigrations()).toEqual(migrationNames())

    await emptyDatabase()
    await applySchemaFile()
    const declared = await schemaOf(env.DB)

    for (const table of ['projects', 'users', 'phones', 'otp_codes', 'deliveries', 'sessions', 'limit_guard']) {
      expect(declared).toHaveProperty([`table ${table}`])
    }
    expect(migrated).toEqual(declared)
  })

  it('tell apart schemas that differ by one added column (the comparison is not vacuous)', async () => {
    await emptyDatabase()
    await applySchemaFile()
    const declared = await schemaOf(env.DB)
    await env.DB.prepare('ALTER TABLE deliveries ADD COLUMN note TEXT').run()
    expect(await schemaOf(env.DB)).not.toEqual(declared)
  })

  it('keep every row of a database that holds data from the first migration', async () => {
    await emptyDatabase()
    const [first] = env.TEST_MIGRATIONS
    if (!first) throw new Error('no migrations')
    await applyD1Migrations(env.DB, [first])
    await seedFirstSchema()
    const tables = await tableNames()
    const before = await snapshot(tables)
    for (const table of tables.filter((t) => t !== 'limit_guard')) expect(before[table], table).toHaveLength(1)

    await applyD1Migrations(env.DB, env.TEST_MIGRATIONS)

    expect(await recordedMigrations()).toEqual(migrationNames())
    for (const [table, migration] of Object.entries(DROPPED)) {
      expect(migrationNames()).toContain(migration)
      expect(await tableNames()).not.toContain(table)
    }
    const kept = tables.filter((t) => !(t in DROPPED))
    expect(kept.length).toBe(tables.length - Object.keys(DROPPED).length)
    const after = await snapshot(kept)
    for (const table of kept) {
      const kept = after[table]?.map((row) =>
        Object.fromEntries(Object.keys(before[table]?.[0] ?? row).map((k) => [k, row[k]])),
      )
      expect(kept, table).toEqual(before[table])
    }
  })

  it('0007 turns the unproven numbers earlier exchanges wrote as owner claims into lapsed attachments', async () => {
    await emptyDatabase()
    await applyD1Migrations(
      env.DB,
      env.TEST_MIGRATIONS.filter((m) => m.name < '0007'),
    )
    const t = 1_764_000_000_000
    const phone = (id: string, user: string, number: string, verified: number, attach: number | null, at: number) =>
      env.DB.prepare(
        `INSERT INTO phones (id, project_id, user_id, phone_number, verified, attach_expires_at, created_at)
         VALUES (?1, 'project-test-x', ?2, ?3, ?4, ?5, ?6)`,
      ).bind(id, user, number, verified, attach, at)
    await env.DB.batch([
      env.DB.prepare(
        `INSERT INTO projects (id, env, name, secret_hash, settings, created_at)
         VALUES ('project-test-x', 'test', 'X', 'ab', '{}', ${t})`,
      ),
      ...['a', 'b', 'c'].map((u) =>
        env.DB.prepare(
          `INSERT INTO users (id, project_id, status, created_at) VALUES ('user-test-${u}', 'project-test-x', 'active', ${t})`,
        ),
      ),
      // Minted by login_or_create / users.create with its user: an owner claim, kept.
      phone('phone-minted', 'user-test-a', '+12025550101', 0, null, t),
      // Written by an exchange after the user existed, never proven: becomes an attachment that lapsed.
      phone('phone-exchanged', 'user-test-b', '+12025550102', 0, null, t + 60_000),
      // Proven numbers and /send attachments are left as they are.
      phone('phone-verified', 'user-test-c', '+12025550103', 1, null, t + 60_000),
      phone('phone-attached', 'user-test-c', '+12025550104', 0, t + 360_000, t + 60_000),
    ])
    await applyD1Migrations(env.DB, env.TEST_MIGRATIONS)
    const { results } = await env.DB.prepare(
      'SELECT id, verified, attach_expires_at, replaces_phone_id FROM phones ORDER BY id',
    ).all()
    expect(results).toEqual([
      { id: 'phone-attached', verified: 0, attach_expires_at: t + 360_000, replaces_phone_id: null },
      { id: 'phone-exchanged', verified: 0, attach_expires_at: t + 360_000, replaces_phone_id: null },
      { id: 'phone-minted', verified: 0, attach_expires_at: null, replaces_phone_id: null },
      { id: 'phone-verified', verified: 1, attach_expires_at: null, replaces_phone_id: null },
    ])
  })

  it('baseline a database created from the schema file before migrations: 0001 recorded, later ones applied', async () => {
    await emptyDatabase()
    // That schema file is exactly 0001, applied without recording anything.
    const [first] = env.TEST_MIGRATIONS
    if (!first) throw new Error('no migrations')
    await env.DB.batch(first.queries.map((q) => env.DB.prepare(q)))
    expect(await tableNames()).not.toContain('d1_migrations')
    await seedFirstSchema()
    const before = await snapshot(await tableNames())

    await env.DB.exec(env.TEST_BASELINE.replace(/--[^\n]*/g, '').replace(/\s+/g, ' '))
    expect(await recordedMigrations()).toEqual(['0001_initial.sql'])
    // Repeating it records nothing more.
    await env.DB.exec(env.TEST_BASELINE.replace(/--[^\n]*/g, '').replace(/\s+/g, ' '))
    expect(await recordedMigrations()).toEqual(['0001_initial.sql'])

    await applyD1Migrations(env.DB, env.TEST_MIGRATIONS)
    expect(await recordedMigrations()).toEqual(migrationNames())
    const kept = Object.keys(before).filter((t) => !(t in DROPPED))
    const after = await snapshot(kept)
    for (const table of kept) {
      expect(after[table]?.length, table).toBe(before[table]?.length)
    }
  })

  it('baseline records nothing in an empty database, which then gets every migration', async () => {
    await emptyDatabase()
    await env.DB.exec(env.TEST_BASELINE.replace(/--[^\n]*/g, '').replace(/\s+/g, ' '))
    expect(await recordedMigrations()).toEqual([])
    await applyD1Migrations(env.DB, env.TEST_MIGRATIONS)
    expect(await recordedMigrations()).toEqual(migrationNames())
    expect(await tableNames()).toContain('projects')
  })
})
