import { env } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
import { type Sql, searchSql } from '../src/db/user-search'
import { SearchUsersRequest } from '../src/schemas'

// users.search runs on indexes only: SQLite's own query plans for every filter, alone and combined,
// never scan a table, and the filters that name users (ids, numbers) never walk the project.

const OPERANDS = {
  phone_number: { filter_name: 'phone_number', filter_value: ['+12025550100', '+12025550101'] },
  phone_id: { filter_name: 'phone_id', filter_value: [`phone-number-test-${crypto.randomUUID()}`] },
  user_id: { filter_name: 'user_id', filter_value: [`user-test-${crypto.randomUUID()}`, 'crm-42'] },
  status: { filter_name: 'status', filter_value: 'active' },
  phone_verified: { filter_name: 'phone_verified', filter_value: true },
  created_at_greater_than: { filter_name: 'created_at_greater_than', filter_value: '2026-01-01T00:00:00Z' },
  created_at_less_than: { filter_name: 'created_at_less_than', filter_value: '2026-01-01T00:00:00Z' },
  created_at_between: {
    filter_name: 'created_at_between',
    filter_value: { greater_than: '2026-01-01T00:00:00Z', less_than: '2026-02-01T00:00:00Z' },
  },
} as const
const NARROWING = ['phone_number', 'phone_id', 'user_id']

async function plan(s: Sql): Promise<string[]> {
  const res = await env.DB.prepare(`EXPLAIN QUERY PLAN ${s.sql}`)
    .bind(...s.params)
    .all<{ detail: string }>()
  return res.results.map((r) => r.detail)
}

function statements(operator: 'AND' | 'OR', operands: unknown[], cursor = false) {
  const body: Record<string, unknown> = { limit: 10, query: { operator, operands } }
  if (cursor) body.cursor = btoa(`1764237600000.user-test-${crypto.randomUUID()}`).replace(/=+$/, '')
  return searchSql('project-test-plan', SearchUsersRequest.parse(body), Date.now())
}

// A table scan is "SCAN <table>" without an index; scanning the bound json_each list is fine.
const tableScan = (detail: string) => /^SCAN /.test(detail) && !/^SCAN json_each/.test(detail)
// Walking all of a project's users or phones: an index searched by project_id alone.
const projectWalk = (detail: string) => /\(project_id=\?\)$/.test(detail)

describe('users.search query plans', () => {
  const names = Object.keys(OPERANDS) as (keyof typeof OPERANDS)[]
  const cases: [string, 'AND' | 'OR', unknown[], boolean][] = [
    ['no filter', 'AND', [], false],
    ['no filter, with a cursor', 'AND', [], true],
    ...names.map((n): [string, 'AND', unknown[], boolean] => [n, 'AND', [OPERANDS[n]], false]),
    ...names.map((n): [string, 'AND', unknown[], boolean] => [
      `${n} AND phone_number`,
      'AND',
      [OPERANDS[n], OPERANDS.phone_number],
      true,
    ]),
    ...names.map((n): [string, 'OR', unknown[], boolean] => [
      `${n} OR user_id`,
      'OR',
      [OPERANDS[n], OPERANDS.user_id],
      false,
    ]),
  ]

  it.each(cases)('%s: no table scan', async (_name, operator, operands, cursor) => {
    const s = statements(operator, operands, cursor)
    for (const statement of [s.page, s.phones, s.count]) {
      const details = await plan(statement)
      expect(details.filter(tableScan), details.join(' | ')).toEqual([])
    }
    // The page's phones are read through phones_user, never by walking the project's phones.
    expect(await plan(s.phones)).toContain('SEARCH p USING INDEX phones_user (user_id=?)')
  })

  it.each(names.filter((n) => NARROWING.includes(n)))(
    '%s: looks users up instead of walking the project',
    async (name) => {
      for (const s of [statements('AND', [OPERANDS[name]]), statements('AND', [OPERANDS[name], OPERANDS.status])]) {
        for (const statement of [s.page, s.phones, s.count]) {
          const details = await plan(statement)
          expect(details.filter(projectWalk), details.join(' | ')).toEqual([])
        }
      }
    },
  )
})
