import type { z } from 'zod'
import {
  ExamplePhoneNumberQuery,
  ExamplePhoneNumberResponse,
  ParsePhoneNumberRequest,
  ParsePhoneNumberResponse,
} from '../schemas'
import { exampleForFrame, FRAME_HTML, frameContentSecurityPolicy, parseForFrame } from '../sdk/phone-frame'
import { RouteGroup } from './group'

/**
 * The self-hosted phone-number frame for Stytch's prebuilt UI (src/sdk/phone-frame.ts): its page and
 * the two calls the page makes to this service. No credentials: the frame holds no secret and the
 * calls only parse what they are given; nothing is stored or logged.
 */
export const phoneFrameRoutes = new RouteGroup('/clientside-services')

phoneFrameRoutes.add(
  {
    method: 'get',
    path: '/index.html',
    operationId: 'phoneFrame',
    summary: "The prebuilt UI's phone-number frame (endpoints.clientsideServicesIframeURL)",
    tag: 'Phone frame',
    auth: 'none',
    response: { text: 'The frame page, speaking the SDK’s postMessage protocol.', mediaType: 'text/html' },
    errors: [],
  },
  async (c) => {
    c.header('Content-Security-Policy', await frameContentSecurityPolicy())
    c.header('X-Content-Type-Options', 'nosniff')
    return c.html(FRAME_HTML)
  },
)

phoneFrameRoutes.add(
  {
    method: 'post',
    path: '/phone_numbers/parse',
    operationId: 'phoneFrameParse',
    summary: 'Parse a phone number as typed (the frame’s parsedPhoneNumber)',
    tag: 'Phone frame',
    auth: 'none',
    body: ParsePhoneNumberRequest,
    response: ParsePhoneNumberResponse,
    errors: [],
  },
  (c) => {
    const { phoneNumber, regionCode } = c.req.valid('json')
    return c.json(parseForFrame(phoneNumber, regionCode) satisfies z.infer<typeof ParsePhoneNumberResponse>)
  },
)

phoneFrameRoutes.add(
  {
    method: 'get',
    path: '/phone_numbers/example',
    operationId: 'phoneFrameExample',
    summary: 'An example mobile number of a country (the frame’s getExamplePhoneNumber)',
    tag: 'Phone frame',
    auth: 'none',
    query: ExamplePhoneNumberQuery,
    response: ExamplePhoneNumberResponse,
    errors: [],
  },
  (c) => {
    const phoneNumber = exampleForFrame(c.req.valid('query').regionCode)
    return c.json((phoneNumber ? { phoneNumber } : {}) satisfies z.infer<typeof ExamplePhoneNumberResponse>)
  },
)
