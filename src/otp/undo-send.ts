import { Batch } from '../db/batch'
import { failUnsentStatement } from '../db/deliveries'
import { refundSendStatements, type SendSubject } from '../limits'
import { errorName, logEvent } from '../log'

/**
 * Compensates a send whose D1 batch committed but whose code never went out (the KV write or the
 * queue send after the batch failed), then rethrows that failure, which the client sees as a 500.
 * One batch: the delivery row is closed as failed, so a job that did reach the queue is dropped by
 * the consumer instead of delivering a code the client was told was not sent; and the send's limit
 * events are taken back, so the client's retry is not refused by the cooldown of a code that never
 * left. The new code stays the phone's current one (the code it replaced is void, as after any
 * resend). If the compensation fails too, that is logged and the original failure still thrown.
 */
export async function undoSend(
  db: D1Database,
  subject: SendSubject,
  deliveryId: string,
  cause: unknown,
): Promise<never> {
  const fields = { delivery_id: deliveryId, project_id: subject.projectId }
  try {
    const batch = new Batch()
    batch.add(failUnsentStatement(db, deliveryId, subject.now))
    batch.addAll(refundSendStatements(db, subject))
    await batch.run(db)
    logEvent('warn', 'otp.send_undone', { ...fields, error: errorName(cause) })
  } catch (err) {
    logEvent('error', 'otp.send_undo_failed', {
      ...fields,
      error: errorName(err),
      cause: errorName(cause),
      alert: true,
    })
  }
  throw cause
}
