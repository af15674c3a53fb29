import { env } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
import { Batch } from '../src/db/batch'

// A scratch table of this file's own, so the tests depend on no service table's contents.
const TABLE = 'batch_test_rows'

async function freshTable() {
  await env.DB.prepare(`DROP TABLE IF EXISTS ${TABLE}`).run()
  await env.DB.prepare(
    `CREATE TABLE ${TABLE} (id INTEGER PRIMARY KEY, label TEXT NOT NULL CHECK (label <> 'bad'))`,
  ).run()
}

const insert = (id: number, label: string) => env.DB.prepare(`INSERT INTO ${TABLE} VALUES (?1, ?2)`).bind(id, label)
const read = (id: number) => env.DB.prepare(`SELECT id, label FROM ${TABLE} WHERE id = ?1`).bind(id)

describe('Batch', () => {
  it('hands each statement its own result, wherever it sits in the batch', async () => {
    await freshTable()
    const batch = new Batch()
    const first = batch.add(insert(1, 'one'))
    batch.addAll([insert(2, 'two'), insert(3, 'three')])
    const missing = batch.add<{ id: number; label: string }>(read(9))
    const two = batch.add<{ id: number; label: string }>(read(2))
    const three = batch.add<{ id: number; label: string }>(read(3))
    expect(batch.size).toBe(6)
    await batch.run(env.DB)

    expect(first.changes).toBe(1)
    expect(missing.first()).toBeUndefined()
    expect(missing.rows()).toEqual([])
    expect(two.first()).toEqual({ id: 2, label: 'two' })
    expect(three.rows()).toEqual([{ id: 3, label: 'three' }])
  })

  it('refuses to read a result before the batch ran, and to run or grow a batch twice', async () => {
    await freshTable()
    const batch = new Batch()
    const handle = batch.add(insert(1, 'one'))
    expect(() => handle.first()).toThrow('batch result read before the batch ran')
    expect(() => handle.changes).toThrow('batch result read before the batch ran')
    await batch.run(env.DB)
    await expect(batch.run(env.DB)).rejects.toThrow('batch ran twice')
    expect(() => batch.add(insert(2, 'two'))).toThrow('statement added to a batch that already ran')
  })

  it('is one transaction: a failing statement rolls back the writes before it and leaves handles unread', async () => {
    await freshTable()
    const batch = new Batch()
    const written = batch.add(insert(1, 'one'))
    batch.add(insert(2, 'bad'))
    await expect(batch.run(env.DB)).rejects.toThrow(/CHECK constraint failed/)
    expect(() => written.changes).toThrow('batch result read before the batch ran')
    const count = await env.DB.prepare(`SELECT COUNT(*) AS n FROM ${TABLE}`).first<{ n: number }>()
    expect(count?.n).toBe(0)
  })

  it('runs an empty batch without a round trip', async () => {
    await expect(new Batch().run(env.DB)).resolves.toBeUndefined()
  })
})
