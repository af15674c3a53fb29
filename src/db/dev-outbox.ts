/**
 * The dev_outbox table (schema.sql): the messages the console providers "delivered" in local
 * development, keyed by delivery id, on either channel.
 */

/** A dev_outbox row (created_at in epoch ms). */
export interface OutboxMessage {
  id: string
  channel: 'whatsapp' | 'sms'
  phone_number: string
  code: string
  locale: string
  text: string
  created_at: number
}

/**
 * Stores messages, in the consumer's batch that records their deliveries sent: one statement whatever
 * their number (one JSON array). Keyed by the delivery id, so a re-run of the same job cannot add a
 * second entry.
 */
export function outboxMessagesStatement(db: D1Database, messages: readonly OutboxMessage[]): D1PreparedStatement {
  return db
    .prepare(
      `INSERT INTO dev_outbox (id, phone_number, code, locale, text, created_at, channel)
       SELECT value ->> '$.id', value ->> '$.phone_number', value ->> '$.code', value ->> '$.locale',
         value ->> '$.text', value ->> '$.created_at', value ->> '$.channel'
       FROM json_each(?1) WHERE true
       ON CONFLICT (id) DO NOTHING`,
    )
    .bind(JSON.stringify(messages))
}

/**
 * The project's messages, newest first; `phoneNumber` (E.164) narrows to one recipient. An outbox
 * entry's id is its delivery id, and the delivery row names the project.
 */
export async function listOutbox(
  db: D1Database,
  projectId: string,
  phoneNumber: string | undefined,
  limit: number,
): Promise<OutboxMessage[]> {
  const { results } = await db
    .prepare(
      `SELECT o.id, o.channel, o.phone_number, o.code, o.locale, o.text, o.created_at
       FROM dev_outbox o JOIN deliveries d ON d.id = o.id
       WHERE d.project_id = ?1 AND (?2 IS NULL OR o.phone_number = ?2)
       ORDER BY o.created_at DESC, o.rowid DESC LIMIT ?3`,
    )
    .bind(projectId, phoneNumber ?? null, limit)
    .all<OutboxMessage>()
  return results
}
