import { Hono } from 'hono'
import * as z from 'zod'
import { rfc3339 } from '../clock'
import type { AppEnv } from '../env'
import { StytchError } from '../errors'
import { validate } from '../middleware/validate'
import { listOutbox } from '../whatsapp/console'

/**
 * Local development routes. They exist only while the console provider is active: with any other
 * WHATSAPP_PROVIDER (the deployed default is "meta") every path here is a plain route_not_found, the
 * same answer as for a path that was never defined. No authentication, as for a local mail catcher.
 */
export const devRoutes = new Hono<AppEnv>()

devRoutes.use('*', async function consoleProviderOnly(c, next) {
  if (c.env.WHATSAPP_PROVIDER !== 'console') {
    throw new StytchError('route_not_found', { message: `No route for ${c.req.method} ${c.req.path}.` })
  }
  await next()
})

/** The outbox filter (query string). */
export const OutboxQuery = z.object({
  // In a query string an unencoded '+' arrives as a space, so `?phone_number=+1202…` as typed works.
  phone_number: z
    .string()
    .max(32)
    .transform((v) => v.trim().replace(/^(?=[0-9])/, '+'))
    .pipe(z.string().regex(/^\+[1-9][0-9]{1,14}$/))
    .optional(),
  limit: z.coerce.number().int().min(1).max(100).default(50),
})

/** What the outbox lists: each message as the console provider "sent" it. */
export const OutboxResponse = z.object({
  messages: z.array(
    z.object({
      id: z.string().describe('The delivery id.'),
      phone_number: z.string(),
      code: z.string(),
      locale: z.string(),
      text: z.string().describe('The message as WhatsApp would show it.'),
      created_at: z.string().describe('RFC 3339 UTC.'),
    }),
  ),
})

/** GET /dev/whatsapp/outbox: what the console provider "sent", newest first. */
devRoutes.get('/whatsapp/outbox', validate('query', OutboxQuery), async (c) => {
  const { phone_number: phoneNumber, limit } = c.req.valid('query')
  const messages = await listOutbox(c.env.DB, phoneNumber, limit)
  return c.json({
    messages: messages.map((m) => ({ ...m, created_at: rfc3339(m.created_at) })),
  } satisfies z.infer<typeof OutboxResponse>)
})
