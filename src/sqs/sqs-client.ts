import { setTimeout } from 'node:timers/promises'
import type { SQSClient, SQSClientConfig } from '@aws-sdk/client-sqs'
import { importDriver, loadOnce } from '../persistence/driver.js'
import { errorMessage, OperationalError, ProgrammingError } from '../persistence/errors.js'

/** The `@aws-sdk/client-sqs` module. */
export type SqsSdk = typeof import('@aws-sdk/client-sqs')

/**
 * How the SQS publisher, republisher and {@link createQueues} reach SQS:
 * a client made by the caller, or the settings to make one with.
 */
export interface SqsClientOptions {
  /**
   * An SQS client (AWS SDK v3) made by the caller, used instead of making
   * one from `endpoint`, `region` and `credentials`; it is never destroyed here.
   */
  readonly client?: SQSClient
  /**
   * Where requests go, e.g. `http://127.0.0.1:4566` for a local emulator
   * (default: the AWS endpoint of the region).
   */
  readonly endpoint?: string
  /** The AWS region (default: the SDK's, from `AWS_REGION` or the profile; `us-east-1` when an `endpoint` is given). */
  readonly region?: string
  /** The credentials, or a provider of them (default: the SDK's provider chain). */
  readonly credentials?: SQSClientConfig['credentials']
}

const loadSdk = loadOnce(() =>
  importDriver<SqsSdk>(
    async () => ({ default: await import('@aws-sdk/client-sqs') }),
    () => 'The SQS relays need the AWS SDK for SQS: npm install @aws-sdk/client-sqs',
  ),
)

/**
 * The SDK and a client: made on first use by {@link connect}, and
 * {@link SqsConnection.destroy}ed by its owner.
 */
export class SqsConnection {
  /** Wraps a client; `owned` says whether destroying the connection destroys the client. */
  constructor(
    readonly sdk: SqsSdk,
    readonly client: SQSClient,
    readonly owned: boolean,
  ) {}

  /** Destroys the client if it was made here (a given client is left to its maker). */
  destroy(): void {
    if (this.owned) this.client.destroy()
  }
}

/**
 * Checks client options (`client`, or `endpoint`, `region` and
 * `credentials`, not both).
 *
 * @throws ProgrammingError naming the conflict or the bad value.
 */
export function checkClientOptions(options: SqsClientOptions): void {
  const { client, endpoint, region, credentials } = options
  if (client !== undefined && (endpoint !== undefined || region !== undefined || credentials !== undefined)) {
    throw new ProgrammingError('Give either an SQS client, or the endpoint, region and credentials to make one with')
  }
  if (endpoint !== undefined && !URL.canParse(endpoint)) {
    throw new ProgrammingError(
      `Invalid SQS endpoint ${JSON.stringify(endpoint)}: give a URL such as http://127.0.0.1:4566`,
    )
  }
}

/**
 * Returns a function that opens one connection on its first call (loading the
 * SDK, an optional peer dependency) and the same one afterwards.
 *
 * @throws ProgrammingError when the SDK is not installed.
 */
export function connect(options: SqsClientOptions): () => Promise<SqsConnection> {
  return loadOnce(async () => {
    const sdk = await loadSdk()
    if (options.client !== undefined) return new SqsConnection(sdk, options.client, false)
    const { endpoint, credentials } = options
    const region = options.region ?? (endpoint === undefined ? undefined : 'us-east-1')
    return new SqsConnection(sdk, new sdk.SQSClient({ endpoint, region, credentials }), true)
  })
}

/**
 * Checks that `url` looks like a queue URL.
 *
 * @throws ProgrammingError naming the option.
 */
export function checkQueueUrl(url: unknown, option: string): string {
  if (typeof url !== 'string' || !URL.canParse(url) || new URL(url).pathname.length < 2) {
    throw new ProgrammingError(
      `${option} must be a queue URL such as https://sqs.us-east-1.amazonaws.com/123456789012/orders.fifo, got ${JSON.stringify(url)}`,
    )
  }
  return url
}

/** Whether a queue URL names a FIFO queue (their names end in `.fifo`). */
export function isFifoUrl(url: string): boolean {
  return url.endsWith('.fifo')
}

/**
 * Checks a whole-number option.
 *
 * @throws ProgrammingError unless `value` is an integer from `min` to `max`.
 */
export function integerOption(name: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `at least ${min}` : `from ${min} to ${max}`
    throw new ProgrammingError(`${name} must be an integer ${range}, got ${value}`)
  }
  return value
}

// Errors that mean "try again later" although SQS marks them as the client's fault.
const THROTTLING = new Set([
  'ThrottlingException',
  'Throttling',
  'RequestThrottled',
  'RequestThrottledException',
  'TooManyRequestsException',
  'KmsThrottled',
])

// Failures before any answer from SQS that no retry can mend.
const PERMANENT = new Set(['CredentialsProviderError', 'AbortError'])

/**
 * Whether an error from the SDK is worth retrying: a network failure, a
 * server fault, throttling. A client fault (a missing queue, a refused
 * request, wrong credentials) is not.
 */
export function isTransient(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false
  const { name, $fault, $retryable } = error as { name?: unknown; $fault?: unknown; $retryable?: unknown }
  if (typeof name === 'string' && PERMANENT.has(name)) return false
  if ($retryable !== undefined && $retryable !== null) return true
  if (typeof name === 'string' && THROTTLING.has(name)) return true
  // No $fault: the request got no answer from SQS (a refused or reset connection, a timeout).
  return $fault === undefined || $fault === 'server'
}

/** Returns an OperationalError saying that `action` on `queueUrl` failed, and why. */
export function sqsError(action: string, queueUrl: string, cause: unknown): OperationalError {
  const name = typeof cause === 'object' && cause !== null && 'name' in cause ? String(cause.name) : ''
  const hint = /NonExistentQueue|QueueDoesNotExist/.test(name)
    ? ': create it (see createQueues), or check the queue URL and the endpoint'
    : ''
  const reason = name !== '' && name !== 'Error' ? `${name}: ${errorMessage(cause)}` : errorMessage(cause)
  return new OperationalError(`SQS ${action} on ${queueUrl} failed (${reason})${hint}`, { cause })
}

/** How {@link retrying} retries. */
export interface RetryOptions {
  /** Tries in all (at least 1). */
  readonly attempts: number
  /** The delay before the first retry, doubled for each next one. */
  readonly retryDelayMs: number
  /** Ends the retries: the last error is thrown at once. */
  readonly signal?: AbortSignal
}

/**
 * Calls `call`, and again after transient failures (see {@link isTransient}),
 * waiting longer each time.
 *
 * @throws what the last call threw, or the first failure that is not transient.
 */
export async function retrying<T>(call: () => Promise<T>, options: RetryOptions): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call()
    } catch (error) {
      if (attempt >= options.attempts || !isTransient(error) || options.signal?.aborted) throw error
      await backoff(options.retryDelayMs, attempt, options.signal)
    }
  }
}

/** Waits `firstDelayMs * 2^(attempt - 1)` ms, at most `maxDelayMs`; resolves early when `signal` aborts. */
export async function backoff(
  firstDelayMs: number,
  attempt: number,
  signal?: AbortSignal,
  maxDelayMs = 10_000,
): Promise<void> {
  const delay = Math.min(firstDelayMs * 2 ** (attempt - 1), maxDelayMs)
  await setTimeout(delay, undefined, { signal }).catch(() => {})
}
