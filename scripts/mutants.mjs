// `npm run mutants`: plants realistic bugs (mutants), one at a time, and reports which ones the default
// test run catches. Every one must be caught: a mutant that survives is a bug the tests let through.
//
//   npm run mutants                      # every mutant, after checking the unmutated tree passes
//   npm run mutants -- --only 3,7        # some of them (numbers as listed)
//   npm run mutants -- --list            # the list only
//   npm run mutants -- --no-baseline     # skip the unmutated run (when npm test just passed)
//
// The repository is never written. The script copies the working tree (tracked and untracked files,
// not what .gitignore ignores; node_modules linked, not copied) to a temporary directory, mutates the
// copy, and deletes the copy when it ends, however it ends; an interrupted run leaves nothing
// behind in the checkout. Each mutant is one exact text replacement, checked to match exactly once
// (a stale mutant fails the script rather than testing nothing), and the file is restored before
// the next one.
//
// Each mutant runs the default `npm test`: `vitest run` (same configuration, same fuzz counts and
// seed) and then, only if that passed, `npm run test:node`. vitest runs with `--bail=1`: it stops
// after the first failing test, since one failure is enough to catch the mutant, and runs exactly
// the tests `npm test` runs until then. The run is deterministic: a fixed list, in a fixed order,
// with the fixed FUZZ_SEED.
import { spawnSync } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { parseArgs } from 'node:util'

/**
 * The mutants: each a bug someone could write in a security rule, as one replacement in one file.
 * @type {{ file: string, bug: string, find: string, replace: string }[]}
 */
const MUTANTS = [
  {
    file: 'src/db/otp-codes.ts',
    bug: 'attempt cap off by one: a code survives one wrong guess more than otp_max_attempts',
    find: 'AND attempts < ?6 AND expires_at > ?3',
    replace: 'AND attempts <= ?6 AND expires_at > ?3',
  },
  {
    file: 'src/db/otp-codes.ts',
    bug: 'single-use condition dropped: a consumed code still opens the gate',
    find: 'code_id = ?5 AND consumed_at IS NULL',
    replace: 'code_id = ?5',
  },
  {
    file: 'src/otp/attributes.ts',
    bug: 'attribute match fails open: no IP or user agent presented passes ip_match_required',
    find: 'if (!given) return false',
    replace: 'if (!given) return true',
  },
  {
    file: 'src/otp/code-store.ts',
    bug: 'code lifetime in the wrong unit: expiration_minutes read as hours',
    find: 'expiresAt: createdAt + expirationMinutes * 60_000,',
    replace: 'expiresAt: createdAt + expirationMinutes * 60 * 60_000,',
  },
  {
    file: 'src/sessions/credentials.ts',
    bug: "JWT claim check removed: a JWT for another audience names this project's session",
    find: '!audiences.includes(projectId) ||',
    replace: '',
  },
  {
    file: 'src/db/sessions.ts',
    bug: 'session expiry checked against the clock in seconds: an expired session still authenticates',
    find: "(?3 = '' OR s.user_id = ?3) AND s.expires_at > ?4`",
    replace: "(?3 = '' OR s.user_id = ?3) AND s.expires_at > ?4 / 1000`",
  },
  {
    file: 'src/db/users.ts',
    bug: 'user lock one failure late: user_lock_threshold + 1 failures lock the user',
    find: `lock_created_at = CASE WHEN \${failures} >= ?5 THEN ?3 END,
         locked_until = CASE WHEN \${failures} >= ?5 THEN ?3 + ?6 END`,
    replace: `lock_created_at = CASE WHEN \${failures} > ?5 THEN ?3 END,
         locked_until = CASE WHEN \${failures} > ?5 THEN ?3 + ?6 END`,
  },
  {
    file: 'src/db/users.ts',
    bug: "attachment never released: login_or_create keeps another account's unproven claim on the number",
    find: `      releaseAttachmentByNumber(db, projectId, phoneNumber),
      db`,
    replace: '      db',
  },
  {
    file: 'src/limits.ts',
    bug: 'limit never charged: sends are not counted per end-user IP',
    find: 'for (const ip of s.ip) events.push({ kind: sendsPerHour(ip.scope), subject: ip.key, exact: false, windowMs: HOUR_MS })',
    replace: '',
  },
  {
    file: 'src/db/limit-counters.ts',
    bug: 'limit guard off by one: a used-up limit (failed authentications per IP) lets one more through',
    find: `\${after ? '>' : '>='}`,
    replace: `\${after ? '>' : '>'}`,
  },
]

const { values } = parseArgs({
  options: {
    only: { type: 'string' },
    list: { type: 'boolean', default: false },
    'no-baseline': { type: 'boolean', default: false },
  },
})

const chosen = values.only
  ? values.only.split(',').map((n) => {
      const i = Number(n) - 1
      if (!Number.isInteger(i) || !MUTANTS[i]) throw new Error(`no mutant ${n} (1-${MUTANTS.length})`)
      return i
    })
  : MUTANTS.map((_, i) => i)

if (values.list) {
  for (const [i, m] of MUTANTS.entries()) console.log(`${i + 1}. ${m.file}: ${m.bug}`)
  process.exit(0)
}

const root = process.cwd()
const copy = mkdtempSync(join(tmpdir(), 'whatsapp-otp-mutants-'))
const removeCopy = () => rmSync(copy, { recursive: true, force: true })
process.once('exit', removeCopy)
for (const signal of /** @type {const} */ (['SIGINT', 'SIGTERM'])) {
  process.once(signal, () => process.exit(signal === 'SIGINT' ? 130 : 143))
}

/** Runs a command in the copy; its output goes to `log`. Returns the exit status. */
function run(command, args, log, env = {}) {
  const result = spawnSync(command, args, {
    cwd: copy,
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    env: { ...process.env, ...env },
  })
  writeFileSync(log, `${result.stdout ?? ''}\n${result.stderr ?? ''}`)
  return result.status ?? 1
}

/** The names of the tests that failed, from vitest's JSON report or the Node test runner's TAP. */
function failures(vitestReport, tapLog) {
  try {
    const report = JSON.parse(readFileSync(vitestReport, 'utf8'))
    const failed = report.testResults.flatMap((file) =>
      file.assertionResults
        .filter((t) => t.status === 'failed')
        .map((t) => `${file.name.slice(copy.length + 1)} > ${t.fullName}`),
    )
    if (failed.length > 0) return failed
    const broken = report.testResults.filter((f) => f.status === 'failed').map((f) => f.name.slice(copy.length + 1))
    if (broken.length > 0) return broken.map((f) => `${f} (the file failed)`)
  } catch {
    // no vitest report: the failure was on the Node side
  }
  try {
    return [...readFileSync(tapLog, 'utf8').matchAll(/^\s*not ok \d+ - (.*)$/gm)].map((m) => m[1])
  } catch {
    return []
  }
}

/** The default `npm test` in the copy, stopping at the first failure. */
function defaultTestRun(label) {
  const logs = join(copy, '.mutants')
  mkdirSync(logs, { recursive: true })
  const report = join(logs, `${label}.vitest.json`)
  const tap = join(logs, `${label}.node.log`)
  rmSync(report, { force: true })
  rmSync(tap, { force: true })
  const bin = join(copy, 'node_modules', '.bin')
  const env = { PATH: `${bin}:${process.env.PATH}` }
  const vitest = run(
    join(bin, 'vitest'),
    ['run', '--bail=1', '--reporter=dot', '--reporter=json', `--outputFile.json=${report}`],
    join(logs, `${label}.vitest.log`),
    env,
  )
  if (vitest !== 0) return { passed: false, by: 'vitest', failed: failures(report, tap) }
  const node = run('npm', ['run', 'test:node'], tap, env)
  if (node !== 0) return { passed: false, by: 'test:node', failed: failures(report, tap) }
  return { passed: true, by: null, failed: [] }
}

// The copy: what `git ls-files` lists as tracked or untracked-but-not-ignored, as it is on disk now.
const listed = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
  cwd: root,
  encoding: 'utf8',
})
if (listed.status !== 0) throw new Error(`git ls-files failed: ${listed.stderr}`)
for (const file of new Set(listed.stdout.split('\0').filter(Boolean))) {
  const from = resolve(root, file)
  const to = join(copy, file)
  mkdirSync(dirname(to), { recursive: true })
  try {
    cpSync(from, to)
  } catch (err) {
    if (err.code !== 'ENOENT') throw err // deleted in the working tree and not yet committed
  }
}
symlinkSync(join(root, 'node_modules'), join(copy, 'node_modules'))
for (const file of ['.dev.vars', 'examples/web-login/.dev.vars']) {
  try {
    cpSync(join(root, file), join(copy, file))
  } catch {
    // created from the example by the dev scripts when missing
  }
}
console.log(`mutants: ${chosen.length} of ${MUTANTS.length}, each against npm test in a copy of the tree (${copy})`)

for (const i of chosen) {
  const m = MUTANTS[i]
  const source = readFileSync(join(copy, m.file), 'utf8')
  const count = source.split(m.find).length - 1
  if (count !== 1) throw new Error(`mutant ${i + 1} (${m.file}) matches ${count} times, not once: update it`)
}

if (!values['no-baseline']) {
  const started = Date.now()
  const base = defaultTestRun('baseline')
  const seconds = Math.round((Date.now() - started) / 1000)
  if (!base.passed) {
    console.error(`the unmutated tree fails ${base.by} (${seconds} s): ${base.failed.slice(0, 5).join('; ')}`)
    console.error('fix that first: a failing tree would make every mutant look caught')
    process.exit(1)
  }
  console.log(`baseline: npm test passes on the unmutated tree (${seconds} s)`)
}

const results = []
for (const i of chosen) {
  const m = MUTANTS[i]
  const path = join(copy, m.file)
  const source = readFileSync(path, 'utf8')
  const started = Date.now()
  let outcome
  try {
    writeFileSync(
      path,
      source.replace(m.find, () => m.replace),
    )
    outcome = defaultTestRun(`mutant-${i + 1}`)
  } finally {
    writeFileSync(path, source)
  }
  const seconds = Math.round((Date.now() - started) / 1000)
  const caught = !outcome.passed
  results.push({ n: i + 1, caught })
  const by = caught ? `CAUGHT by ${outcome.by}: ${outcome.failed[0] ?? '(a failing file)'}` : 'NOT CAUGHT'
  console.log(`${String(i + 1).padStart(2)}. ${m.file}: ${m.bug}\n    ${by} (${seconds} s)`)
}

const survived = results.filter((r) => !r.caught)
console.log(
  survived.length === 0
    ? `all ${results.length} mutants caught`
    : `${survived.length} of ${results.length} mutants survived: ${survived.map((r) => r.n).join(', ')}`,
)
process.exit(survived.length === 0 ? 0 : 1)
