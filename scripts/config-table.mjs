// The README's configuration table, built from the configuration list (src/config.ts), so the docs
// cannot drift from what the Worker and `npm run doctor` check.
//
//   npm run docs:config    # rewrites the table in README.md
//   (test/node/config.test.mjs fails when README.md differs from what this builds)
import { readFileSync, writeFileSync } from 'node:fs'
import { CONFIG } from '../src/config.ts'

export const START = '<!-- configuration table: built by scripts/config-table.mjs from src/config.ts -->'
export const END = '<!-- end of configuration table -->'

const NEEDED = { always: 'always', meta: 'with `meta`', twilio: 'with `twilio`', optional: 'optional' }

export function configTable() {
  const rows = CONFIG.map((e) => {
    const value = e.kind === 'var' ? (e.default ? `\`${e.default}\`` : '—') : '—'
    return `| \`${e.name}\` | ${e.kind} | ${NEEDED[e.needed]} | ${value} | ${e.description} |`
  })
  return ['| Name | Kind | Needed | wrangler.toml | Meaning |', '|---|---|---|---|---|', ...rows].join('\n')
}

/** README.md with the table between the markers replaced by configTable(). */
export function readmeWithTable(readme) {
  const start = readme.indexOf(START)
  const end = readme.indexOf(END)
  if (start < 0 || end < start) throw new Error('README.md lacks the configuration table markers')
  return `${readme.slice(0, start + START.length)}\n${configTable()}\n${readme.slice(end)}`
}

if (import.meta.url === `file://${process.argv[1]}` && process.argv.includes('--write')) {
  writeFileSync('README.md', readmeWithTable(readFileSync('README.md', 'utf8')))
  console.log('README.md configuration table rewritten from src/config.ts')
}
