import { afterAll } from 'vitest'
import { messageText } from '../src/delivery/text'
import { LOCALES, type Locale } from '../src/schemas'
import { secretsIn } from './secrets'

/**
 * Leak check over everything the Worker (and the tests) log. Registered as a setup file, so it runs
 * in every test file: console.log/info/warn/error/debug are wrapped (not spied: tests restore their
 * spies with vi.restoreAllMocks, which must not remove this) and every line of the file is kept. After the file's
 * tests, no line may carry a secret or a credential (test/secrets.ts), and no code the console
 * provider delivered may appear in any other line. A test that silences a method with its own spy
 * (mockImplementation) hides those lines from this check; such tests assert on them themselves.
 */

/** One console call, its arguments formatted as they would print. */
export interface LogLine {
  level: string
  text: string
}

interface CaptureState {
  lines: LogLine[]
  quiet: boolean
  /** The console object the wrappers are installed on. */
  installedOn: Console | null
}

const LEVELS = ['log', 'info', 'warn', 'error', 'debug'] as const
const STATE_KEY = Symbol.for('whatsapp-otp.test.log-capture')

function format(arg: unknown): string {
  if (typeof arg === 'string') return arg
  if (arg instanceof Error) return `${arg.name}: ${arg.message}\n${arg.stack ?? ''}`
  try {
    return JSON.stringify(arg) ?? String(arg)
  } catch {
    return String(arg)
  }
}

/**
 * Installs the wrappers and returns the shared state. Once per console object: the console binds
 * what is assigned to its methods, so a wrapper cannot be recognised by identity afterwards.
 */
function captureState(): CaptureState {
  const holder = globalThis as unknown as Record<symbol, CaptureState | undefined>
  const state = holder[STATE_KEY] ?? { lines: [], quiet: false, installedOn: null }
  holder[STATE_KEY] = state
  if (state.installedOn === console) return state
  state.installedOn = console
  for (const level of LEVELS) {
    const original = console[level].bind(console)
    console[level] = (...args: unknown[]) => {
      state.lines.push({ level, text: args.map(format).join(' ') })
      if (!state.quiet) original(...args)
    }
  }
  return state
}

/** Every line logged so far in this file. */
export const capturedLines = (): readonly LogLine[] => captureState().lines

/** Keeps capturing but stops printing (the fuzz tests log thousands of routine lines). */
export function quietConsole(): void {
  captureState().quiet = true
}

// "[<channel> console] to <E.164> (<locale>): <message text>": the delivery line the console
// providers once printed. They print nothing now (a code reaches only the dev outbox), so such a line
// is a leak like any other; the check below still recognises it, to name its code. An SMS may end
// with its autofill line "@<domain> #<code>".
const CONSOLE_DELIVERY = /^\[(whatsapp|sms) console\] to (\+[1-9][0-9]{1,14}) \(([a-z-]+)\): ([0-9]{6}) /
const AUTOFILL_DOMAIN = /^[a-z0-9.-]{1,253}$/

/** The code in a console provider delivery line, or null when `text` is not exactly such a line. */
export function consoleDeliveryCode(text: string): string | null {
  const match = CONSOLE_DELIVERY.exec(text)
  const channel = match?.[1]
  const locale = match?.[3] as Locale | undefined
  const code = match?.[4]
  if (!match || !code || !locale || !LOCALES.includes(locale)) return null
  const message = `[${channel} console] to ${match[2]} (${locale}): ${messageText(locale, code)}`
  if (text === message) return code
  const autofill = text.startsWith(`${message}\n\n@`) && text.endsWith(` #${code}`)
  const domain = text.slice(message.length + 3, text.length - code.length - 2)
  return channel === 'sms' && autofill && AUTOFILL_DOMAIN.test(domain) ? code : null
}

// Meta error codes are six digits too; they are logged on purpose, as the field error_code.
const ERROR_CODE_FIELD = /"error_code":\s*\d+/g

/** Problems in `lines`: secrets anywhere, and any of `codes` anywhere. */
export function leaksIn(lines: readonly LogLine[], codes: Iterable<string>): string[] {
  const known = new Set(codes)
  const problems: string[] = []
  for (const line of lines) {
    const secrets = secretsIn(line.text)
    if (secrets.length > 0) problems.push(`${secrets.join(', ')} in console.${line.level}: ${line.text.slice(0, 200)}`)
    const digits = line.text.replace(ERROR_CODE_FIELD, '').match(/\b[0-9]{6}\b/g) ?? []
    const codes = digits.filter((d) => known.has(d))
    if (codes.length > 0) problems.push(`code ${codes.join(', ')} in console.${line.level}: ${line.text.slice(0, 200)}`)
  }
  return problems
}

// This setup file runs before each test file; the files of a vitest worker share one isolate
// (vitest.config.ts), so each file starts with no lines and printing on, and is checked on its own.
const fileState = captureState()
fileState.lines.length = 0
fileState.quiet = false

afterAll(() => {
  const lines = capturedLines()
  const delivered = lines.map((l) => consoleDeliveryCode(l.text)).filter((c): c is string => c !== null)
  const problems = leaksIn(lines, delivered)
  if (problems.length > 0) throw new Error(`log leak check failed:\n${problems.slice(0, 20).join('\n')}`)
})
