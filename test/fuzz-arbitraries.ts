import fc from 'fast-check'
import { MAX_BODY_BYTES } from '../src/middleware/validate'
import { basicAuth } from './helpers'

/**
 * Input generators for the fuzz tests: hostile versions of everything a client controls (body,
 * content type, credentials, path and query), mixed with just enough valid values that the
 * generated requests also get past validation and exercise the storage paths.
 */

/** Plus signs that are not U+002B: fullwidth, superscript, subscript, small, heavy, modifier, … */
export const LOOKALIKE_PLUS = ['\uFF0B', '\u207A', '\u208A', '\uFE62', '\u2795', '\u02D6', '\u16ED', '\u2064', '\u1429']

// The zero of digit sets other than ASCII: Arabic-Indic, Extended Arabic-Indic, Devanagari, Bengali,
// Thai, fullwidth, and the mathematical bold, double-struck and monospace digits (outside the BMP).
const DIGIT_ZEROS = [0x0660, 0x06f0, 0x0966, 0x09e6, 0x0e50, 0xff10, 0x1d7ce, 0x1d7d8, 0x1d7f6]

/** One digit 0-9 written in a non-ASCII script (\p{Nd}, but never [0-9]). */
export const unicodeDigit = fc
  .tuple(fc.constantFrom(...DIGIT_ZEROS), fc.integer({ min: 0, max: 9 }))
  .map(([zero, d]) => String.fromCodePoint(zero + d))

export const asciiDigits = (minLength: number, maxLength: number) =>
  fc.string({ unit: fc.constantFrom(...'0123456789'), minLength, maxLength })

/** Printable ASCII: what a header value may hold (Headers rejects CR, LF and NUL). */
export const printable = (maxLength = 40) =>
  fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength })

/** A string past every field limit and, as a body, past MAX_BODY_BYTES. */
export const hugeString = fc
  .tuple(fc.string({ minLength: 1, maxLength: 3 }), fc.integer({ min: 1_000, max: MAX_BODY_BYTES + 2_000 }))
  .map(([unit, times]) => unit.repeat(times))

/** Phone numbers: plausible E.164, and the ways a number can look right without being ASCII E.164. */
export const phoneLike: fc.Arbitrary<string> = fc.oneof(
  { arbitrary: asciiDigits(1, 17).map((d) => `+${d}`), weight: 3 },
  { arbitrary: asciiDigits(4, 4).map((d) => `+1202555${d}`), weight: 8 },
  fc.tuple(fc.constantFrom(...LOOKALIKE_PLUS), asciiDigits(8, 15)).map(([plus, d]) => `${plus}${d}`),
  fc.array(unicodeDigit, { minLength: 8, maxLength: 15 }).map((ds) => `+${ds.join('')}`),
  fc.tuple(asciiDigits(3, 6), unicodeDigit, asciiDigits(3, 6)).map(([a, u, b]) => `+1${a}${u}${b}`),
  fc
    .tuple(asciiDigits(4, 4), fc.constantFrom(' ', '-', '.', '\u00A0', '\u200B', '\u202E', '\t', '\n'))
    .map(([d, sep]) => `+1 202${sep}555${sep}${d}`),
  asciiDigits(4, 4).map((d) => ` +1202555${d} `),
  asciiDigits(10, 11),
  fc.string({ maxLength: 24 }),
  fc.string({ unit: 'binary', maxLength: 24 }),
  hugeString,
)

/** JSON values of the wrong type for any field, and values at the edges of JSON numbers. */
export const wrongType: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: fc.jsonValue({ maxDepth: 3 }), weight: 4 },
  { arbitrary: fc.constantFrom(null, true, false, 0, -1, 1e308, -0, 1.5, '', [], {}, [null], { '': '' }), weight: 4 },
  { arbitrary: hugeString, weight: 1 },
)

/** A field's value: mostly a plausible one (so requests get past validation), sometimes anything. */
export const field = <T>(plausible: fc.Arbitrary<T>): fc.Arbitrary<unknown> =>
  fc.oneof({ arbitrary: plausible, weight: 12 }, { arbitrary: wrongType, weight: 1 })

export const locale = fc.constantFrom('en', 'es', 'fr', 'pt-br', 'EN', 'pt_BR', 'pt-BR', 'de', '')

export const attributes = fc.record(
  {
    ip_address: field(fc.oneof(fc.ipV4(), fc.ipV6(), printable(20))),
    user_agent: field(fc.oneof(printable(30), hugeString)),
  },
  { requiredKeys: [] },
)

/** Extra keys: unknown fields, prototype names, and empty or odd names. */
export const extraFields = fc.dictionary(
  fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('__proto__', 'constructor', 'toString', '')),
  fc.jsonValue({ maxDepth: 2 }),
  { maxKeys: 3 },
)

/**
 * An object of `fields` plus extra keys. A `required` field is present in 9 of 10 objects, any other
 * in 1 of 4, so most objects are complete enough to pass validation and some miss something.
 */
export function bodyObject(
  fields: Record<string, fc.Arbitrary<unknown>>,
  required: readonly string[],
): fc.Arbitrary<Record<string, unknown>> {
  const entries = Object.entries(fields).map(([name, value]) => {
    const present = required.includes(name) ? 9 : 1
    const absent = required.includes(name) ? 1 : 3
    return fc.oneof(
      { arbitrary: value.map((v): [string, unknown][] => [[name, v]]), weight: present },
      { arbitrary: fc.constant<[string, unknown][]>([]), weight: absent },
    )
  })
  return fc
    .tuple(
      fc.tuple(...entries),
      fc.oneof({ arbitrary: fc.constant({}), weight: 2 }, { arbitrary: extraFields, weight: 1 }),
    )
    .map(([known, extra]) => ({ ...extra, ...Object.fromEntries(known.flat()) }))
}

/** A JSON object text in which some keys occur twice (JSON.parse keeps the last). */
function withDuplicateKeys(object: fc.Arbitrary<Record<string, unknown>>, names: string[]): fc.Arbitrary<string> {
  return fc
    .tuple(
      object,
      fc.array(fc.tuple(fc.constantFrom(...names), wrongType), { minLength: 1, maxLength: 3 }),
      fc.boolean(),
    )
    .map(([o, dups, first]) => {
      const entries = Object.entries(o).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`)
      const extra = dups.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v) ?? 'null'}`)
      return `{${(first ? [...extra, ...entries] : [...entries, ...extra]).join(',')}}`
    })
}

/** Texts that are not one JSON object: broken JSON, other JSON values, and JSON's near misses. */
export const notJsonObject: fc.Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc
    .jsonValue({ maxDepth: 2 })
    .filter((v) => v === null || typeof v !== 'object' || Array.isArray(v))
    .map((v) => JSON.stringify(v)),
  fc.constantFrom(
    '',
    '{',
    '}',
    '{"a":}',
    'NaN',
    "{'phone_number':'+12025550100'}",
    '{"a":1}{"b":2}',
    '\uFEFF{}',
    '{"a":1,}',
    '[{}]',
    'null',
    '{"phone_number":"+1202555\\ud800"}',
  ),
)

/** A request body as raw text or bytes, built around the route's field-aware object generator. */
export function rawBody(
  object: fc.Arbitrary<Record<string, unknown>>,
  names: string[],
): fc.Arbitrary<string | Uint8Array> {
  return fc.oneof(
    { arbitrary: object.map((o) => JSON.stringify(o)), weight: 12 },
    { arbitrary: withDuplicateKeys(object, names), weight: 2 },
    { arbitrary: notJsonObject, weight: 1 },
    { arbitrary: fc.uint8Array({ maxLength: 64 }), weight: 1 },
    { arbitrary: object.map((o) => JSON.stringify({ ...o, padding: 'x'.repeat(MAX_BODY_BYTES) })), weight: 1 },
  )
}

/** Content types: mostly JSON (so bodies get parsed), and the ways it can be wrong. */
export const contentType: fc.Arbitrary<string | undefined> = fc.oneof(
  { arbitrary: fc.constant('application/json'), weight: 20 },
  { arbitrary: fc.constantFrom('application/json; charset=utf-8', 'APPLICATION/JSON', 'application/json;'), weight: 2 },
  {
    arbitrary: fc.constantFrom(
      undefined,
      '',
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/jsonp',
      'application/json-patch+json',
      'json',
      ' application/json',
    ),
    weight: 3,
  },
  { arbitrary: printable(30), weight: 1 },
)

/** An Authorization header and whether it holds `project`'s credentials. */
export interface Credentials {
  header: string | undefined
  valid: boolean
}

/** Mostly the right credentials; otherwise every way they can be wrong. */
export function credentials(project: { id: string; secret: string }): fc.Arbitrary<Credentials> {
  const basic = (text: string) => `Basic ${btoa(text)}`
  const wrong = (header: fc.Arbitrary<string | undefined>) =>
    header.map((h): Credentials => ({ header: h, valid: false }))
  const otherSecret = printable(60).filter((s) => s !== project.secret)
  return fc.oneof(
    { arbitrary: fc.constant<Credentials>({ header: basicAuth(project), valid: true }), weight: 40 },
    wrong(fc.constant(undefined)),
    wrong(otherSecret.map((s) => basic(`${project.id}:${s}`))),
    wrong(fc.uuid().map((u) => basic(`project-test-${u}:${project.secret}`))),
    wrong(fc.constant(basic(`${project.id.replace('-test-', '-live-')}:${project.secret}`))),
    wrong(fc.constantFrom(basic(project.id), basic(`${project.id}:`), basic(`:${project.secret}`), 'Basic', 'Basic ')),
    wrong(fc.base64String({ maxLength: 80 }).map((b) => `Basic ${b}`)),
    wrong(printable(60).map((t) => `Bearer ${t}`)),
    wrong(fc.constant(`${basicAuth(project)}, ${basicAuth(project)}`)),
    wrong(fc.constant(`${basicAuth(project)}A`)),
    wrong(fc.constant(`Digest ${btoa(`${project.id}:${project.secret}`)}`)),
    wrong(fc.integer({ min: 1_000, max: 5_000 }).map((n) => `Basic ${'QUFB'.repeat(n)}`)),
    wrong(printable(80)),
  )
}
