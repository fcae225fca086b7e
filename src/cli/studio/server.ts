// The studio's HTTP server (node:http: a handful of GET routes need no
// framework). It serves the page (src/cli/studio/page, copied beside this file
// by the build), the three modules the page imports (Preact, its hooks and
// htm, from node_modules as published: no bundler), the JSON API, and the live
// log as server-sent events from the recorder's `subscribe`.
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { createRequire } from 'node:module'
import type { AddressInfo } from 'node:net'
import { dirname, join } from 'node:path'
import { errorMessage, NotFoundError, ProgrammingError } from '../../persistence/errors.js'
import { jsonValue } from '../output.js'
import { ApplicationNotFoundError } from '../storage.js'
import { answer, logFilter, shownEvent } from './api.js'
import { type AccessPolicy, refusal, TOKEN_COOKIE } from './guard.js'
import type { StudioSource } from './source.js'

/** A running studio; `await using` stops it. */
export interface Studio extends AsyncDisposable {
  /** The address to open, with the access token when there is one. */
  readonly url: string
  /** The port it listens on (the one asked for, or the one the system chose for 0). */
  readonly port: number
  /** Ends the live streams and stops listening; closing twice does nothing. */
  close(): Promise<void>
}

/** Where and how a studio listens. */
export interface StudioOptions {
  /** The address to bind (127.0.0.1 by default). */
  readonly host: string
  /** The port; 0 lets the system choose. */
  readonly port: number
  /** Returns who may read the studio once its port is known (see `accessPolicy`). */
  readonly policy: (port: number) => AccessPolicy
}

interface Asset {
  readonly type: string
  readonly body: Buffer
}

// Between two live notifications, a comment keeps proxies and the browser from closing the stream.
const KEEP_ALIVE_MS = 20_000

/**
 * Starts a studio over `source`. Every request passes the policy's checks
 * first (see `refusal`); the studio answers GET and HEAD only.
 */
export async function startStudio(source: StudioSource, options: StudioOptions): Promise<Studio> {
  const assets = loadAssets()
  const live = new Set<AbortController>()
  let policy: AccessPolicy | undefined
  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => fail(response, error))
  })
  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    // Requests may reach the socket before the policy is known (it needs the port): they wait for no one.
    if (policy === undefined) return send(response, 503, { error: 'The studio is starting: try again' })
    const refused = refusal(request, policy)
    if (refused !== undefined) return send(response, refused.status, { error: refused.message })
    const url = new URL(request.url ?? '/', 'http://studio')
    if (url.pathname === '/' && policy?.token !== undefined && url.searchParams.has('token')) {
      // The token moves to a cookie the page's scripts cannot read, and out of the address bar and history.
      response.writeHead(303, {
        location: '/',
        'set-cookie': `${TOKEN_COOKIE}=${policy.token}; HttpOnly; SameSite=Strict; Path=/`,
      })
      return void response.end()
    }
    const asset = assets.get(url.pathname === '/' ? '/index.html' : url.pathname)
    if (asset !== undefined) {
      response.writeHead(200, { ...assets.headers, 'content-type': asset.type, 'cache-control': 'no-cache' })
      return void response.end(request.method === 'HEAD' ? undefined : asset.body)
    }
    const path = url.pathname.split('/').slice(1).map(decodeURIComponent)
    if (path[0] !== 'api') return send(response, 404, { error: `Nothing at ${url.pathname}` })
    if (path.length === 4 && path[1] === 'apps' && path[3] === 'live') {
      return await streamLog(source, path[2] as string, url.searchParams, request, response, live)
    }
    const body = await answer(source, path.slice(1), url.searchParams)
    if (body === undefined) return send(response, 404, { error: `No API route ${url.pathname}` })
    send(response, 200, body)
  }
  server.listen(options.port, options.host)
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve)
    server.once('error', reject)
  })
  const { port } = server.address() as AddressInfo
  policy = options.policy(port)
  const shownHost = options.host.includes(':') ? `[${options.host}]` : options.host
  const close = async (): Promise<void> => {
    for (const controller of live) controller.abort()
    if (!server.listening) return
    await new Promise<void>((resolve) => {
      server.close(() => resolve())
      server.closeAllConnections()
    })
  }
  return {
    url: `http://${shownHost}:${port}/${policy.token === undefined ? '' : `?token=${policy.token}`}`,
    port,
    close,
    [Symbol.asyncDispose]: close,
  }
}

/**
 * Streams the log of `app` as server-sent events, one `notification` event
 * each, from after `after` (or the `Last-Event-ID` a reconnecting browser
 * sends; the end of the log when neither is given) until the page goes away.
 */
async function streamLog(
  source: StudioSource,
  app: string,
  query: URLSearchParams,
  request: IncomingMessage,
  response: ServerResponse,
  live: Set<AbortController>,
): Promise<void> {
  const storage = await source.storage(app)
  const events = storage.recorders.events
  const resumed = request.headers['last-event-id'] ?? query.get('after')
  const gt = resumed === undefined || resumed === null ? await events.maxNotificationId() : Number(resumed)
  if (!Number.isSafeInteger(gt) || gt < 0) {
    throw new ProgrammingError(`The position to follow the log after must be an integer of 0 or more, not '${resumed}'`)
  }
  const stopping = new AbortController()
  live.add(stopping)
  request.once('close', () => stopping.abort())
  response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' })
  response.write(': following\n\n')
  const keepAlive = setInterval(() => response.write(': keep-alive\n\n'), KEEP_ALIVE_MS)
  try {
    for await (const notification of events.subscribe({ gt, ...logFilter(query), signal: stopping.signal })) {
      const data = JSON.stringify(shownEvent(storage, notification), jsonValue)
      response.write(`id: ${notification.id}\nevent: notification\ndata: ${data}\n\n`)
    }
  } catch (error) {
    // The headers are sent: the page learns of the failure as an event, and reconnects after it.
    response.write(`event: failure\ndata: ${JSON.stringify({ error: errorMessage(error) })}\n\n`)
  } finally {
    clearInterval(keepAlive)
    live.delete(stopping)
    response.end()
  }
}

function send(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' })
  response.end(JSON.stringify(body, jsonValue))
}

/** Answers a failed request with its error's message and the status its type says. */
function fail(response: ServerResponse, error: unknown): void {
  const status =
    error instanceof NotFoundError || error instanceof ApplicationNotFoundError
      ? 404
      : error instanceof ProgrammingError
        ? 400
        : 500
  if (response.headersSent) return void response.end()
  send(response, status, { error: errorMessage(error) })
}

/** The page's files and the modules it imports, by path, with the headers every page response carries. */
function loadAssets(): Map<string, Asset> & { headers: Record<string, string> } {
  const page = (file: string) => readFileSync(new URL(`./page/${file}`, import.meta.url))
  const require = createRequire(import.meta.url)
  const vendor = (path: string) => readFileSync(path)
  const js = 'text/javascript; charset=utf-8'
  const index = page('index.html')
  const assets = new Map<string, Asset>([
    ['/index.html', { type: 'text/html; charset=utf-8', body: index }],
    ['/app.js', { type: js, body: page('app.js') }],
    ['/style.css', { type: 'text/css; charset=utf-8', body: page('style.css') }],
    ['/vendor/preact.mjs', { type: js, body: vendor(require.resolve('preact')) }],
    ['/vendor/hooks.mjs', { type: js, body: vendor(require.resolve('preact/hooks')) }],
    ['/vendor/htm.mjs', { type: js, body: vendor(join(dirname(require.resolve('htm')), 'htm.mjs')) }],
  ])
  return Object.assign(assets, { headers: securityHeaders(index.toString()) })
}

/**
 * The headers of the page: scripts only from the studio itself (and its one
 * inline import map, by hash), no framing, no referrer (the address may carry the token).
 */
function securityHeaders(index: string): Record<string, string> {
  const importMap = /<script type="importmap">([\s\S]*?)<\/script>/.exec(index)?.[1] ?? ''
  const hash = createHash('sha256').update(importMap).digest('base64')
  return {
    'content-security-policy': `default-src 'self'; script-src 'self' 'sha256-${hash}'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'`,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
  }
}
