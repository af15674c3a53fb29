import type { Child } from 'hono/jsx'
import { type Locale, MESSAGES, type Messages } from './i18n'
import { DUMMY_TOKEN, isTestSitekey } from './turnstile'

/** What the one page shows: the phone form, the code form, or the signed-in view. */
export type View =
  | { kind: 'phone'; phone?: string; error?: string; notice?: string }
  | {
      kind: 'code'
      phoneDisplay: string
      country: string | undefined
      resendInSeconds: number
      /** The resend needs a Turnstile check (the login's free resends are used up). */
      resendTurnstile: boolean
      /** Local development: the dev outbox for this number, and the project whose credentials it takes. */
      outbox: { url: string; projectId: string } | undefined
      error?: string
      notice?: string
    }
  | {
      kind: 'account'
      userId: string
      phones: { phone_number: string; verified: boolean }[]
      status: string
      sessionExpires: string
      factor: string | undefined
    }

export interface PageProps {
  locale: Locale
  turnstileSiteKey: string
  view: View
}

const STYLE = `
:root { color-scheme: light dark; --accent: #128c4a; --error: #b3261e; font-family: system-ui, sans-serif; }
@property --left { syntax: '<integer>'; inherits: true; initial-value: 0; }
* { box-sizing: border-box; }
body { margin: 0; line-height: 1.5; font-size: 1.0625rem; }
main { max-width: 28rem; margin: 0 auto; padding: 1.5rem 1rem 3rem; }
h1 { font-size: 1.5rem; margin: 0.5rem 0 0.75rem; }
label { display: block; font-weight: 600; margin-top: 1.25rem; }
.hint { margin: 0.25rem 0 0.5rem; color: GrayText; font-size: 0.95rem; }
input[type=tel], input[type=text] { width: 100%; font-size: 1.25rem; padding: 0.7rem 0.8rem; border: 2px solid GrayText; border-radius: 0.5rem; }
input[aria-invalid=true] { border-color: var(--error); }
input:focus-visible, button:focus-visible, a:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
button { font: inherit; padding: 0.7rem 1.2rem; border-radius: 0.5rem; border: 2px solid var(--accent); cursor: pointer; }
button.primary { width: 100%; margin-top: 1rem; background: var(--accent); color: white; font-weight: 600; }
button.secondary { background: transparent; color: inherit; }
.alert { border-left: 4px solid var(--error); background: color-mix(in srgb, var(--error) 10%, transparent); padding: 0.6rem 0.8rem; margin: 1rem 0; }
.notice { border-left: 4px solid var(--accent); background: color-mix(in srgb, var(--accent) 10%, transparent); padding: 0.6rem 0.8rem; margin: 1rem 0; }
.dev { font-size: 0.9rem; border: 1px dashed GrayText; padding: 0.5rem 0.75rem; margin-top: 1.5rem; overflow-wrap: anywhere; }
.dev p { margin: 0 0 0.5rem; }
.resend { display: grid; align-items: center; min-height: 3rem; margin-top: 0.75rem; }
.resend > * { grid-area: 1 / 1; }
.resend.waiting { animation: tick var(--wait) linear forwards; }
@keyframes tick { from { --left: var(--from); } to { --left: 0; } }
.countdown::after { counter-reset: left var(--left); content: counter(left) ' s'; font-variant-numeric: tabular-nums; }
.resend.waiting .resend-now { visibility: hidden; animation: show 0s var(--wait) forwards; }
.resend.waiting .resend-wait { animation: hide 0s var(--wait) forwards; }
@keyframes show { to { visibility: visible; } }
@keyframes hide { to { visibility: hidden; } }
.resend-wait { margin: 0; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.4rem 1rem; margin: 1rem 0; }
dt { font-weight: 600; } dd { margin: 0; overflow-wrap: anywhere; }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip-path: inset(50%); white-space: nowrap; }
`

function Alert({ error, notice }: { error?: string | undefined; notice?: string | undefined }) {
  return (
    <>
      {/* role=alert is announced when the page loads with it, and takes no focus from the field. */}
      {error ? (
        <div id="form-error" class="alert" role="alert">
          {error}
        </div>
      ) : null}
      <div class="notice-region" role="status">
        {notice ? <p class="notice">{notice}</p> : null}
      </div>
    </>
  )
}

/** The Turnstile widget for the form `action` ('login', 'resend'): siteverify reports it back, and the server checks it. */
function Turnstile({ siteKey, locale, action, m }: { siteKey: string; locale: Locale; action: string; m: Messages }) {
  if (isTestSitekey(siteKey)) {
    // A test sitekey's widget would only produce this token; the page does without Cloudflare's script.
    return (
      <>
        <input type="hidden" name="cf-turnstile-response" value={DUMMY_TOKEN} />
        <p class="hint">{m.turnstileTest}</p>
      </>
    )
  }
  return (
    <div class="cf-turnstile" data-sitekey={siteKey} data-language={locale} data-action={action} data-size="flexible" />
  )
}

function PhoneForm({ view, props, m }: { view: Extract<View, { kind: 'phone' }>; props: PageProps; m: Messages }) {
  const describedBy = view.error ? 'phone-hint form-error' : 'phone-hint'
  return (
    <form method="post" action="/login" novalidate>
      <p>{m.intro}</p>
      <Alert error={view.error} notice={view.notice} />
      <label for="phone">{m.phoneLabel}</label>
      <p id="phone-hint" class="hint">
        {m.phoneHint}
      </p>
      <input
        id="phone"
        name="phone"
        type="tel"
        inputmode="tel"
        autocomplete="tel"
        required
        autofocus
        value={view.phone ?? ''}
        aria-describedby={describedBy}
        aria-invalid={view.error ? 'true' : undefined}
      />
      <Turnstile siteKey={props.turnstileSiteKey} locale={props.locale} action="login" m={m} />
      <button class="primary" type="submit">
        {m.sendCode}
      </button>
    </form>
  )
}

function CodeForm({ view, props, m }: { view: Extract<View, { kind: 'code' }>; props: PageProps; m: Messages }) {
  const describedBy = view.error ? 'code-sent code-hint form-error' : 'code-sent code-hint'
  const wait = view.resendInSeconds
  return (
    <>
      <p id="code-sent">{m.codeSentTo(view.phoneDisplay, view.country)}</p>
      <Alert error={view.error} notice={view.notice} />
      <form method="post" action="/verify" novalidate>
        <label for="code">{m.codeLabel}</label>
        <p id="code-hint" class="hint">
          {m.codeHint}
        </p>
        <input
          id="code"
          name="code"
          type="text"
          inputmode="numeric"
          autocomplete="one-time-code"
          maxlength={10}
          required
          autofocus
          aria-describedby={describedBy}
          aria-invalid={view.error ? 'true' : undefined}
        />
        <button class="primary" type="submit">
          {m.verify}
        </button>
      </form>
      <form method="post" action="/resend">
        {view.resendTurnstile ? (
          <Turnstile siteKey={props.turnstileSiteKey} locale={props.locale} action="resend" m={m} />
        ) : null}
        <div
          class={wait > 0 ? 'resend waiting' : 'resend'}
          style={wait > 0 ? `--from:${wait};--wait:${wait}s` : undefined}
        >
          {wait > 0 ? (
            <>
              {/* The number counts down in CSS (no script): visible, but read as the sentence below. */}
              <p class="resend-wait" aria-hidden="true">
                {m.resendWait} <span class="countdown" />
              </p>
              <p class="sr-only">{m.resendWaitSr(wait)}</p>
            </>
          ) : null}
          <button class="secondary resend-now" type="submit">
            {m.resend}
          </button>
        </div>
      </form>
      <form method="post" action="/restart">
        <button class="secondary" type="submit">
          {m.otherNumber}
        </button>
      </form>
      {view.outbox ? (
        <div class="dev">
          <p>
            {m.devOutbox} <a href={view.outbox.url}>{view.outbox.url}</a>
          </p>
          {/* The secret stays out of the page: the command names the variable that holds it. */}
          <code>{`curl -u "${view.outbox.projectId}:$STYTCH_SECRET" '${view.outbox.url}'`}</code>
        </div>
      ) : null}
    </>
  )
}

function Account({ view, m }: { view: Extract<View, { kind: 'account' }>; m: Messages }) {
  return (
    <>
      <dl>
        <dt>{m.userId}</dt>
        <dd data-field="user-id">{view.userId}</dd>
        {view.phones.map((p) => (
          <>
            <dt>{m.phoneNumber}</dt>
            <dd data-field="phone">
              {p.phone_number} ({m.verified}: {p.verified ? m.yes : m.no})
            </dd>
          </>
        ))}
        <dt>{m.status}</dt>
        <dd>{view.status}</dd>
        <dt>{m.sessionExpires}</dt>
        <dd data-field="session-expires">{view.sessionExpires}</dd>
        {view.factor ? (
          <>
            <dt>{m.factor}</dt>
            <dd>{view.factor}</dd>
          </>
        ) : null}
      </dl>
      <form method="post" action="/logout">
        <button class="primary" type="submit">
          {m.signOut}
        </button>
      </form>
    </>
  )
}

export function Page(props: PageProps) {
  const m = MESSAGES[props.locale]
  const { view } = props
  let body: Child
  if (view.kind === 'phone') body = <PhoneForm view={view} props={props} m={m} />
  else if (view.kind === 'code') body = <CodeForm view={view} props={props} m={m} />
  else body = <Account view={view} m={m} />
  const heading = view.kind === 'account' ? m.signedInTitle : m.title
  const checks = view.kind === 'phone' || (view.kind === 'code' && view.resendTurnstile)
  const widget = checks && !isTestSitekey(props.turnstileSiteKey)
  return (
    <html lang={props.locale === 'pt-br' ? 'pt-BR' : props.locale}>
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{heading}</title>
        <style dangerouslySetInnerHTML={{ __html: STYLE }} />
        {widget ? <script src="https://challenges.cloudflare.com/turnstile/v0/api.js" async defer /> : null}
      </head>
      <body>
        <main>
          <h1>{heading}</h1>
          {body}
        </main>
      </body>
    </html>
  )
}
