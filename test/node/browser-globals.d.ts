// biome-ignore-all lint/suspicious/noExplicitAny: the pages hold third-party objects (Stytch's SDK client on window) that have no types here
// The page globals that the Chromium tests (test/node/*-browser.test.mjs) use in callbacks they hand
// to page.evaluate / waitForFunction: written in these Node files, but run inside the browser page.
// For their type check only (tsconfig.node.json).
declare const window: any
declare const document: any
declare function getComputedStyle(element: any): any
