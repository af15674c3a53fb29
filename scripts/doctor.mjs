// `npm run doctor`: checks a configuration before the first user does, against the one configuration
// list (src/config.ts). Prints one line per finding (setting names, never values) and exits 1 when
// anything is wrong.
//
//   npm run doctor                                    # local: wrangler.toml vars + .dev.vars
//   npm run doctor -- --dev-vars FILE                 # local, with another secrets file
//   npm run doctor -- --remote --env production       # the deployed Worker: its secrets (names only,
//                                                     # via `wrangler secret list`), vars and bindings
//
// Both: every secret and var the providers need is set, set values are well-formed (lengths, key
// formats), wrangler.toml declares exactly the required secrets of the list (with SMS_PROVIDER
// "twilio", the Twilio ones too), and every D1 shard (DB, DB_1, …) has applied every migration (a
// deployed shard behind is an error; local state is migrated by `npm run dev`, so there a warning). With Meta credentials (locally from .dev.vars; for --remote export
// WHATSAPP_ACCESS_TOKEN in the shell), the phone-number id and the template in every locale's
// language are looked up in the Graph API; with Twilio's (locally from .dev.vars; for --remote export
// TWILIO_AUTH_TOKEN, and TWILIO_API_KEY_SECRET if you use an API key), the account, the credentials
// and the sender are looked up in Twilio's API.
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { unstable_readConfig } from 'wrangler'
import { checkConfig, checkMetaAccount, checkTwilioAccount, requiredSecrets } from '../src/config.ts'
import { d1MigrationsPending, shardBindings } from './d1.mjs'

const { values: args } = parseArgs({
  options: {
    remote: { type: 'boolean', default: false },
    env: { type: 'string' },
    'dev-vars': { type: 'string' },
  },
})

/** NAME=VALUE lines, as wrangler reads .dev.vars (no quoting needed for our values). */
function readDevVars(path) {
  if (!existsSync(path)) return {}
  const vars = {}
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const match = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line)
    if (!match) continue
    vars[match[1]] = match[2].replace(/^(["'])(.*)\1$/, '$2')
  }
  return vars
}

const PLACEHOLDER = /^0+(-0+)*$/
const wranglerEnv = { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: 'false', WRANGLER_SEND_METRICS: 'false' }

const config = unstable_readConfig({ config: 'wrangler.toml', env: args.env })
const where = args.env ? `[env.${args.env}]` : 'the top level'
const findings = []

const declared = [...(config.secrets?.required ?? [])].sort()
const expected = requiredSecrets(config.vars).sort()
if (JSON.stringify(declared) !== JSON.stringify(expected)) {
  findings.push({
    level: 'error',
    subject: 'wrangler.toml',
    message: `secrets.required in ${where} is [${declared.join(', ')}], the list (src/config.ts) requires [${expected.join(', ')}]`,
  })
}

let values
let setWithoutValue
if (args.remote) {
  let listed = []
  try {
    const out = execFileSync(
      'wrangler',
      ['secret', 'list', '--format', 'json', ...(args.env ? ['--env', args.env] : [])],
      {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
        env: wranglerEnv,
      },
    )
    listed = JSON.parse(out).map((s) => s.name)
  } catch (err) {
    findings.push({
      level: 'error',
      subject: 'wrangler secret list',
      message: `failed: ${String(err.message).split('\n')[0]}`,
    })
  }
  setWithoutValue = new Set(listed)
  values = {
    ...config.vars,
    WHATSAPP_ACCESS_TOKEN: process.env.WHATSAPP_ACCESS_TOKEN,
    TWILIO_AUTH_TOKEN: process.env.TWILIO_AUTH_TOKEN,
    TWILIO_API_KEY_SECRET: process.env.TWILIO_API_KEY_SECRET,
  }
  for (const name of ['WHATSAPP_PROVIDER', 'SMS_PROVIDER']) {
    if (config.vars[name] === 'console') {
      findings.push({
        level: 'error',
        subject: name,
        message: 'is "console" on a deployed Worker: codes would be logged and kept in the dev outbox',
      })
    }
  }
  for (const db of config.d1_databases) {
    if (PLACEHOLDER.test(db.database_id ?? '')) {
      findings.push({
        level: 'error',
        subject: `D1 ${db.binding}`,
        message: `database_id in ${where} is still the placeholder`,
      })
    }
  }
  for (const kv of config.kv_namespaces) {
    if (PLACEHOLDER.test(kv.id ?? '')) {
      findings.push({ level: 'error', subject: `KV ${kv.binding}`, message: `id in ${where} is still the placeholder` })
    }
  }
} else {
  const devVarsPath =
    args['dev-vars'] ?? (args.env && existsSync(`.dev.vars.${args.env}`) ? `.dev.vars.${args.env}` : '.dev.vars')
  if (!existsSync(devVarsPath)) {
    findings.push({
      level: 'error',
      subject: devVarsPath,
      message: 'does not exist: `npm run dev` creates it from .dev.vars.example (local development values)',
    })
  }
  // As in `wrangler dev`: .dev.vars overrides wrangler.toml's vars.
  values = { ...config.vars, ...readDevVars(devVarsPath) }
}

findings.push(...checkConfig({ values, setWithoutValue }))

// Every shard's migrations: a shard behind the others breaks the projects it holds and any move to it.
for (const binding of shardBindings(args.env)) {
  let pending
  try {
    pending = d1MigrationsPending({ binding, remote: args.remote, configEnv: args.env, env: wranglerEnv })
  } catch (err) {
    findings.push({
      level: 'error',
      subject: `D1 ${binding}`,
      message: `migrations could not be listed: ${String(err.message).split('\n')[0]}`,
    })
    continue
  }
  if (pending.length === 0) {
    findings.push({ level: 'ok', subject: `D1 ${binding}`, message: 'has every migration applied' })
  } else {
    const command = `npm run db:migrate${args.remote ? ` -- --remote${args.env ? ` --env ${args.env}` : ''}` : ''}`
    findings.push({
      level: args.remote ? 'error' : 'warning',
      subject: `D1 ${binding}`,
      message: `has ${pending.length} migration(s) to apply (${pending.length <= 3 ? pending.join(', ') : `${pending[0]} … ${pending.at(-1)}`}): ${command}`,
    })
  }
}

// With credentials, each provider in use is asked whether they work (Meta's Graph API, Twilio's API).
const ACCOUNTS = [
  {
    inUse: values.WHATSAPP_PROVIDER === 'meta',
    secret: 'WHATSAPP_ACCESS_TOKEN',
    subject: 'Meta account',
    what: 'the phone number and templates',
    check: checkMetaAccount,
  },
  {
    inUse: values.SMS_PROVIDER === 'twilio',
    secret: 'TWILIO_AUTH_TOKEN',
    subject: 'Twilio account',
    what: 'the account and the sender',
    check: checkTwilioAccount,
  },
]
for (const account of ACCOUNTS.filter((a) => a.inUse)) {
  if (values[account.secret]) {
    findings.push(...(await account.check(values, fetch)))
  } else {
    findings.push({
      level: 'warning',
      subject: account.subject,
      message: args.remote
        ? `not checked: export ${account.secret} in this shell to look up ${account.what}`
        : `not checked without ${account.secret}`,
    })
  }
}

const mark = { ok: 'ok  ', warning: 'warn', error: 'FAIL' }
console.log(
  `Configuration of ${args.remote ? `the deployed Worker ${config.name}` : 'local development'} (${where} of wrangler.toml)`,
)
for (const f of findings) console.log(`${mark[f.level]}  ${f.subject} ${f.message}`)
const errors = findings.filter((f) => f.level === 'error')
if (errors.length > 0) {
  console.log(`\n${errors.length} problem(s): ${[...new Set(errors.map((f) => f.subject))].join(', ')}`)
  process.exit(1)
}
console.log('\nNo problems found.')
