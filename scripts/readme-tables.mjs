// The README's generated tables, so the docs cannot drift from the code they describe:
//  - the configuration table, from the configuration list (src/config.ts), which the Worker and
//    `npm run doctor` check against;
//  - the limits table (Abuse limits), from the project settings' schema (ProjectSettingsSchema in
//    src/settings.ts): each limit's name, default, range, description and the answer it gives.
//
//   npm run docs:tables    # rewrites both tables in README.md
//   (test/node/config.test.mjs fails when README.md differs from what this builds)
import { readFileSync, writeFileSync } from 'node:fs'
import * as z from 'zod'
import { CONFIG } from '../src/config.ts'
import { ProjectSettingsSchema } from '../src/settings.ts'

const NEEDED = { always: 'always', meta: 'with `meta`', twilio: 'with `twilio`', optional: 'optional' }

export function configTable() {
  const rows = CONFIG.map((e) => {
    const value = e.kind === 'var' ? (e.default ? `\`${e.default}\`` : '—') : '—'
    return `| \`${e.name}\` | ${e.kind} | ${NEEDED[e.needed]} | ${value} | ${e.description} |`
  })
  return ['| Name | Kind | Needed | wrangler.toml | Meaning |', '|---|---|---|---|---|', ...rows].join('\n')
}

/** A number as the README writes it: digits grouped by thousands. */
const number = (n) => n.toLocaleString('en-US')

/** A setting's default as the README shows it: its value, its range, and the other values it takes. */
function defaultCell(setting) {
  if (typeof setting.default === 'number') {
    const range =
      setting.minimum !== undefined && setting.maximum !== undefined
        ? ` (${number(setting.minimum)}–${number(setting.maximum)})`
        : ''
    return `${number(setting.default)}${range}`
  }
  if (setting.default === null) return 'none'
  if (setting.enum) {
    const others = setting.enum.filter((v) => v !== setting.default).map((v) => `\`${v}\``)
    return `\`${setting.default}\`${others.length > 0 ? ` (or ${others.join(', ')})` : ''}`
  }
  const star = setting.anyOf?.some((option) => option.const === '*') ? ' (or `"*"`)' : ''
  return `\`${JSON.stringify(setting.default)}\`${star}`
}

/**
 * The limits table: every setting of ProjectSettingsSchema but the frontend SDK's (sdk_*, which the
 * README lists in its own section), in the schema's order.
 */
export function limitsTable() {
  /** @type {Record<string, any>} */
  const properties = z.toJSONSchema(ProjectSettingsSchema, { io: 'input' }).properties ?? {}
  const rows = Object.entries(properties)
    .filter(([name]) => !name.startsWith('sdk_'))
    .map(([name, setting]) => {
      if (!setting.description || setting.error === undefined) throw new Error(`${name} lacks its description or error`)
      return `| \`${name}\` | ${defaultCell(setting)} | ${setting.description} | ${setting.error} |`
    })
  return ['| Setting | Default (range) | Meaning | Error |', '|---|---|---|---|', ...rows].join('\n')
}

const TABLES = [
  {
    start: '<!-- configuration table: built by scripts/readme-tables.mjs from src/config.ts -->',
    end: '<!-- end of configuration table -->',
    build: configTable,
  },
  {
    start: '<!-- limits table: built by scripts/readme-tables.mjs from ProjectSettingsSchema in src/settings.ts -->',
    end: '<!-- end of limits table -->',
    build: limitsTable,
  },
]

/** README.md with each generated table (between its markers) built anew. */
export function readmeWithTables(readme) {
  let text = readme
  for (const { start, end, build } of TABLES) {
    const from = text.indexOf(start)
    const to = text.indexOf(end)
    if (from < 0 || to < from) throw new Error(`README.md lacks the markers ${start} … ${end}`)
    text = `${text.slice(0, from + start.length)}\n${build()}\n${text.slice(to)}`
  }
  return text
}

if (import.meta.url === `file://${process.argv[1]}` && process.argv.includes('--write')) {
  writeFileSync('README.md', readmeWithTables(readFileSync('README.md', 'utf8')))
  console.log('README.md tables rewritten from src/config.ts and src/settings.ts')
}
