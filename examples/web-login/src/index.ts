import { app } from './app'
import type { Bindings } from './config'

export default { fetch: app.fetch } satisfies ExportedHandler<Bindings>
