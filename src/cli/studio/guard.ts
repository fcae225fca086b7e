// Who may read the studio. It serves stored events, which may be personal
// data, so every request is checked before any route runs: the method (the
// studio only reads), the Host header (a page of another site whose name
// resolves to 127.0.0.1, DNS rebinding, sends its own name), the Origin and
// Sec-Fetch-Site headers (a page of another site that reaches the server
// anyway), and the access token when one is set.
import { randomBytes, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { isIP } from 'node:net'
import { hostname, networkInterfaces } from 'node:os'
import { ProgrammingError } from '../../persistence/errors.js'

/** What a request must carry to be served. */
export interface AccessPolicy {
  /** The Host header values served (`host:port`, in lower case). */
  readonly hosts: ReadonlySet<string>
  /** The access token every request must carry, when the studio has one. */
  readonly token?: string
}

/** Why a request is refused: the HTTP status and a message naming the problem. */
export interface Refusal {
  readonly status: number
  readonly message: string
}

/** The cookie in which a browser keeps the access token once it opened the page with `?token=`. */
export const TOKEN_COOKIE = 'eventsourcing_studio_token'

const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '[::1]']

/** True for an address that only this machine reaches: 127.0.0.0/8, ::1, or localhost. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)
}

/**
 * Returns the policy of a studio bound to `host` and `port`. A loopback
 * address needs no token (one may still be given); any other address needs
 * one, and `expose` must be set, so that a server reachable from the network
 * is never started by a typo.
 *
 * @throws ProgrammingError for another address without `expose`, or without a token.
 */
export function accessPolicy(
  host: string,
  port: number,
  { expose = false, token }: { expose?: boolean; token?: string } = {},
): AccessPolicy {
  if (!isLoopback(host)) {
    if (!expose) {
      throw new ProgrammingError(
        `The studio would be reachable from other machines on ${host}: pass --expose to mean it (it then needs an access token)`,
      )
    }
    if (token === undefined || token.length < 16) {
      throw new ProgrammingError(
        `The studio on ${host} needs an access token of 16 characters or more: set EVENTSOURCING_STUDIO_TOKEN (or omit it for a random one)`,
      )
    }
  }
  const names = isLoopback(host) ? LOOPBACK_NAMES : [...LOOPBACK_NAMES, ...hostNames(host)]
  return { hosts: new Set(names.map((name) => `${name}:${port}`.toLowerCase())), token }
}

/** Returns a random access token: 32 base64url characters. */
export function randomToken(): string {
  return randomBytes(24).toString('base64url')
}

/** The names a browser may use for a server bound to `host`: the address itself, or every address and the machine's name for a wildcard. */
function hostNames(host: string): string[] {
  const wildcard = host === '0.0.0.0' || host === '::'
  const addresses = wildcard
    ? Object.values(networkInterfaces()).flatMap((infos) => (infos ?? []).map((info) => info.address))
    : [host]
  return [
    ...addresses.map((address) => (isIP(address) === 6 ? `[${address}]` : address)),
    ...(wildcard ? [hostname()] : []),
  ]
}

/** Returns why `request` is refused, or undefined when it may be served. */
export function refusal(request: IncomingMessage, policy: AccessPolicy): Refusal | undefined {
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    return { status: 405, message: `The studio only reads: ${request.method} is not allowed` }
  }
  const host = (request.headers.host ?? '').toLowerCase()
  if (!policy.hosts.has(host)) {
    return { status: 403, message: `Host '${host}' is not this studio's: open it by the address it printed` }
  }
  const origin = request.headers.origin
  if (origin !== undefined && origin.toLowerCase() !== `http://${host}`) {
    return { status: 403, message: `Requests from ${origin} are not allowed: the studio answers its own page only` }
  }
  const site = request.headers['sec-fetch-site']
  if (site !== undefined && site !== 'same-origin' && site !== 'none') {
    return { status: 403, message: `A ${site} request is not allowed: the studio answers its own page only` }
  }
  if (policy.token !== undefined && !carriesToken(request, policy.token)) {
    return { status: 401, message: 'This studio needs its access token: open the address it printed, with ?token=' }
  }
  return undefined
}

/** True when the request carries the token: as `Authorization: Bearer`, in the studio's cookie, or as `?token=`. */
function carriesToken(request: IncomingMessage, token: string): boolean {
  const bearer = /^Bearer (.+)$/.exec(request.headers.authorization ?? '')?.[1]
  const cookie = cookies(request.headers.cookie)[TOKEN_COOKIE]
  const query = new URL(request.url ?? '/', 'http://studio').searchParams.get('token') ?? undefined
  return [bearer, cookie, query].some((given) => given !== undefined && sameSecret(given, token))
}

function cookies(header: string | undefined): Record<string, string> {
  const found: Record<string, string> = {}
  for (const part of (header ?? '').split(';')) {
    const at = part.indexOf('=')
    if (at > 0) found[part.slice(0, at).trim()] = part.slice(at + 1).trim()
  }
  return found
}

/** Compares in constant time, so the time of a refusal tells nothing of the token. */
function sameSecret(given: string, token: string): boolean {
  const a = Buffer.from(given)
  const b = Buffer.from(token)
  return a.length === b.length && timingSafeEqual(a, b)
}
