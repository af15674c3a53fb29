import type { z } from 'zod'
import { rfc3339 } from '../clock'
import { listOutbox } from '../db/dev-outbox'
import { StytchError } from '../errors'
import { parseIp } from '../ip'
import { projectAuth } from '../middleware/auth'
import { OutboxQuery, OutboxResponse } from '../schemas'
import { RouteGroup } from './group'

/**
 * Local development routes. They exist only while a console provider is active (WHATSAPP_PROVIDER or
 * SMS_PROVIDER "console"): with the deployed defaults ("meta", "none") every path here is a plain
 * route_not_found, the same answer as for a path that was never defined. They also answer only a request addressed to a
 * loopback host: a web page the developer visits could otherwise rebind its own domain name to
 * 127.0.0.1 and read the codes from the browser (its requests carry the page's own Host). And they
 * need the Basic credentials of a test project, and show only that project's messages.
 */
export const devRoutes = new RouteGroup('/dev')

devRoutes.app.use('*', async function consoleProviderOnly(c, next) {
  const consoleActive = c.env.WHATSAPP_PROVIDER === 'console' || c.env.SMS_PROVIDER === 'console'
  if (!consoleActive || !isLoopbackRequest(c.req.raw)) {
    throw new StytchError('route_not_found', { message: `No route for ${c.req.method} ${c.req.path}.` })
  }
  await next()
})
devRoutes.app.use('*', projectAuth())
devRoutes.app.use('*', async function testProjectsOnly(c, next) {
  if (c.var.project.env !== 'test') {
    throw new StytchError('forbidden', { message: 'The outbox shows the messages of test projects only.' })
  }
  await next()
})

/**
 * True when both the URL and the Host header (when there is one) name a loopback host: `localhost`
 * or a name under `.localhost` (browsers resolve those to loopback themselves, never through DNS),
 * an IPv4 address in 127.0.0.0/8, `::1`, or an IPv4-mapped IPv6 form of 127.0.0.0/8.
 */
export function isLoopbackRequest(request: Request): boolean {
  const urlHost = new URL(request.url).hostname
  const hostHeader = request.headers.get('host')
  return isLoopbackName(urlHost) && (hostHeader === null || isLoopbackName(hostOfHeader(hostHeader)))
}

/** The host part of a Host header value (`name`, `name:port`, `[v6]`, `[v6]:port`). */
function hostOfHeader(value: string): string {
  const trimmed = value.trim()
  const bracketed = /^\[([^\]]*)\](?::[0-9]*)?$/.exec(trimmed)
  if (bracketed) return bracketed[1] ?? ''
  return trimmed.replace(/:[0-9]*$/, '')
}

function isLoopbackName(host: string): boolean {
  const name = host
    .toLowerCase()
    .replace(/^\[(.*)\]$/, '$1')
    .replace(/\.$/, '')
  if (name === 'localhost' || name.endsWith('.localhost')) return true
  // 127.0.0.0/8 (also IPv4-mapped, which parseIp returns as IPv4) or ::1.
  const ip = parseIp(name)
  if (!ip) return false
  return 'v4' in ip ? ip.v4.startsWith('127.') : ip.v6 === 1n
}

const OUTBOX_DESCRIPTION =
  'Exists only while a console provider is active (WHATSAPP_PROVIDER or SMS_PROVIDER "console", never the ' +
  'deployed defaults) and only for requests addressed to a loopback host (localhost, 127.0.0.0/8, ::1); ' +
  "otherwise 404 route_not_found. Needs the credentials of a test project (a live project's are refused " +
  'with 403) and lists only its messages, WhatsApp and SMS alike, each with its channel.'

/** The outbox at its channel-neutral path and at the path apps and tests first read it at. */
for (const [path, operationId] of [
  ['/outbox', 'devOutbox'],
  ['/whatsapp/outbox', 'devWhatsappOutbox'],
] as const) {
  devRoutes.add(
    {
      method: 'get',
      path,
      operationId,
      summary: 'Local development only: the codes the console providers "sent" for a test project, newest first',
      description: OUTBOX_DESCRIPTION,
      tag: 'Development',
      auth: 'project',
      query: OutboxQuery,
      response: OutboxResponse,
      errors: ['route_not_found', 'forbidden'],
    },
    async (c) => {
      const { phone_number: phoneNumber, limit } = c.req.valid('query')
      const messages = await listOutbox(c.env.DB, c.var.project.id, phoneNumber, limit)
      return c.json({
        messages: messages.map((m) => ({ ...m, created_at: rfc3339(m.created_at) })),
      } satisfies z.infer<typeof OutboxResponse>)
    },
  )
}
