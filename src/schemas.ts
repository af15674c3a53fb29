import { z } from 'zod'

/**
 * Request and response schemas: the one source for validation and for the OpenAPI document.
 * Optional fields accept `null` as "absent" (several Stytch SDKs send nulls for unset fields).
 */

export const LOCALES = ['en', 'es', 'fr', 'pt-br'] as const
export type Locale = (typeof LOCALES)[number]

const optional = <T extends z.ZodType>(schema: T) => schema.nullish().transform((v) => v ?? undefined)

export const Attributes = z
  .object({
    ip_address: optional(z.union([z.ipv4(), z.ipv6()])),
    user_agent: optional(z.string().max(1_024)),
  })
  .describe('Provided attributes to help with fraud detection.')

export type AttributesInput = z.infer<typeof Attributes>

const PhoneNumber = z
  .string()
  .max(32)
  .describe('E.164 phone number, e.g. +12025550123. +10000000000 is the sandbox number in test projects.')

const ExpirationMinutes = z.number().int().min(1).max(10).describe('Code lifetime in minutes, 1-10, default 2.')

const Locale = z.enum(LOCALES).describe('Message language, default en.')

export const LoginOrCreateRequest = z.object({
  phone_number: PhoneNumber,
  expiration_minutes: optional(ExpirationMinutes).transform((v) => v ?? 2),
  attributes: optional(Attributes),
  create_user_as_pending: optional(z.boolean()).transform((v) => v ?? false),
  locale: optional(Locale).transform((v) => v ?? 'en'),
})
export type LoginOrCreateInput = z.infer<typeof LoginOrCreateRequest>

export const LoginOrCreateResponse = z.object({
  request_id: z.string(),
  user_id: z.string(),
  phone_id: z.string(),
  user_created: z.boolean(),
  status_code: z.literal(200),
})

export const ErrorResponse = z.object({
  status_code: z.number().int(),
  request_id: z.string(),
  error_type: z.string(),
  error_message: z.string(),
  error_url: z.string(),
  error_details: z.record(z.string(), z.unknown()).optional(),
})
