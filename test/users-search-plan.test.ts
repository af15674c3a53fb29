import { describe, expect, it } from 'vitest'
import { pagePhonesSql, SEARCH_TOTAL_CAP, type Sql, searchSql } from '../src/db/user-search'
import { SearchUsersRequest } from '../src/schemas'
import { queryPlan } from './helpers'

// users.search runs on indexes only: SQLite's own query plans for every filter, alone and combined,
// never scan a table, and the filters that name users (ids, numbers) never walk the project.
// phone_verified is one key lookup per user in phones_verified, however often it is repeated.

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
const UNVERIFIED = { filter_name: 'phone_verified', filter_value: false } as const

const plan = (s: Sql): Promise<string[]> => queryPlan(s.sql, ...s.params)

const cursorOf = (text: string) => btoa(text).replace(/=+$/, '')

function statements(operator: 'AND' | 'OR', operands: unknown[], cursor: string | false = false) {
  const body: Record<string, unknown> = { limit: 10, query: { operator, operands } }
  if (cursor !== false) body.cursor = cursor
  return searchSql('project-test-plan', SearchUsersRequest.parse(body), Date.now())
}

/** The statements that read users: the page, and the count when there is one. */
const userReads = (s: ReturnType<typeof statements>) => [s.page, ...(s.count ? [s.count] : [])]

// A table scan is "SCAN <table>" without an index; scanning the bound json_each list, or the rows of
// a subquery (the capped count counts those of its LIMITed walk), is fine.
const tableScan = (detail: string) => /^SCAN /.test(detail) && !/^SCAN (json_each|\(subquery-)/.test(detail)
// Walking all of a project's users or phones: an index searched by project_id alone.
const projectWalk = (detail: string) => /\(project_id=\?\)$/.test(detail)
// Any read of phones in a plan line.
const phonesRead = (detail: string) => /^SEARCH p (EXISTS )?USING /.test(detail)
const VERIFIED_LOOKUP = /USING (COVERING )?INDEX phones_verified \(project_id=\? AND verified=\? AND user_id=\?\)/

describe('users.search query plans', () => {
  const names = Object.keys(OPERANDS) as (keyof typeof OPERANDS)[]
  const carried = cursorOf(`1764237600000.user-test-${crypto.randomUUID()}.42`)
  const cases: [string, 'AND' | 'OR', unknown[], string | false][] = [
    ['no filter', 'AND', [], false],
    ['no filter, with a cursor', 'AND', [], carried],
    ...names.map((n): [string, 'AND', unknown[], false] => [n, 'AND', [OPERANDS[n]], false]),
    ...names.map((n): [string, 'AND', unknown[], string] => [
      `${n} AND phone_number`,
      'AND',
      [OPERANDS[n], OPERANDS.phone_number],
      carried,
    ]),
    ...names.map((n): [string, 'OR', unknown[], false] => [
      `${n} OR user_id`,
      'OR',
      [OPERANDS[n], OPERANDS.user_id],
      false,
    ]),
  ]

  it.each(cases)('%s: no table scan', async (_name, operator, operands, cursor) => {
    for (const statement of userReads(statements(operator, operands, cursor))) {
      const details = await plan(statement)
      expect(details.filter(tableScan), details.join(' | ')).toEqual([])
    }
  })

  it.each(names.filter((n) => NARROWING.includes(n)))(
    '%s: looks users up instead of walking the project',
    async (name) => {
      for (const s of [statements('AND', [OPERANDS[name]]), statements('AND', [OPERANDS[name], OPERANDS.status])]) {
        for (const statement of userReads(s)) {
          const details = await plan(statement)
          expect(details.filter(projectWalk), details.join(' | ')).toEqual([])
        }
      }
    },
  )

  it('phone_verified alone or under AND is a semi-join on phones_verified, never a walk of the user’s phones', async () => {
    for (const operands of [[UNVERIFIED], [OPERANDS.phone_verified], [UNVERIFIED, OPERANDS.status]]) {
      for (const statement of userReads(statements('AND', operands))) {
        const details = await plan(statement)
        const phones = details.filter(phonesRead)
        expect(phones, details.join(' | ')).toHaveLength(1)
        expect(phones[0], details.join(' | ')).toMatch(/^SEARCH p EXISTS /)
        expect(phones[0]).toMatch(VERIFIED_LOOKUP)
        expect(
          details.filter((d) => /CORRELATED/.test(d)),
          details.join(' | '),
        ).toEqual([])
      }
    }
  })

  it('phone_verified among other OR filters is one key lookup per user in phones_verified', async () => {
    for (const other of names.filter((n) => n !== 'phone_verified')) {
      for (const statement of userReads(statements('OR', [UNVERIFIED, OPERANDS[other]]))) {
        const details = await plan(statement)
        const phones = details.filter(phonesRead).filter((d) => /phones_verified|phones_user/.test(d))
        expect(phones, details.join(' | ')).toHaveLength(1)
        expect(phones[0]).toMatch(VERIFIED_LOOKUP)
      }
    }
  })

  it('a repeated filter is evaluated once: twenty phone_verified operands make one lookup', async () => {
    const twenty = Array.from({ length: 20 }, () => UNVERIFIED)
    for (const operator of ['AND', 'OR'] as const) {
      for (const operands of [twenty, [...twenty.slice(10), OPERANDS.phone_verified]]) {
        for (const statement of userReads(statements(operator, operands))) {
          const details = await plan(statement)
          const lookups = details.filter((d) => VERIFIED_LOOKUP.test(d))
          // true and false under AND are two conditions (a user may hold both kinds of number).
          const expected = operator === 'AND' && operands.length === 11 ? 2 : 1
          expect(lookups, details.join(' | ')).toHaveLength(expected)
          expect(details.filter((d) => /phones_user/.test(d))).toEqual([])
        }
      }
    }
  })

  it('the total is counted only on a first page, and at most SEARCH_TOTAL_CAP + 1 users are counted', async () => {
    const first = statements('AND', [UNVERIFIED])
    expect(first.count?.sql).toMatch(/LIMIT \?\d+\)$/)
    expect(first.count?.params.at(-1)).toBe(SEARCH_TOTAL_CAP + 1)
    expect(first.total).toBeNull()
    const later = statements('AND', [UNVERIFIED], carried)
    expect(later.count).toBeNull()
    expect(later.total).toBe(42)
  })

  it("a page's phones are read by the page's user ids through phones_user, never by reading users again", async () => {
    const ids = [`user-test-${crypto.randomUUID()}`, `user-test-${crypto.randomUUID()}`]
    const details = await plan(pagePhonesSql('project-test-plan', ids, Date.now()))
    expect(details).toContain('SEARCH p USING INDEX phones_user (user_id=?)')
    expect(details.filter(tableScan)).toEqual([])
    expect(
      details.filter((d) => /\bu\b|users/.test(d)),
      details.join(' | '),
    ).toEqual([])
  })
})
