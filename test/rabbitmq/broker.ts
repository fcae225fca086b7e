// The broker of the RabbitMQ tests: RABBITMQ_URL, or one answering on this
// machine's default port, or else a node of this machine's rabbitmq-server
// that the tests start themselves, as the user running them (no root needed),
// with its data, logs and Erlang cookie in a temporary directory, and stop
// afterwards. Also `rabbitmqctl`, aimed at whichever node is in use.

import { execFile, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { promisify } from 'node:util'
import amqp from 'amqplib'
import { installed, rabbitMqServer } from '../services.js'

/** The broker the tests use: RABBITMQ_URL, or the default guest account on this machine. */
export const RABBITMQ_URL = process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672'

/** How long a started node may take to boot. */
const BOOT_MS = 180_000

const run = promisify(execFile)

/** The node the tests started: its name, and the variables its scripts need (its cookie is in their HOME). */
let started: { readonly name: string; readonly bin: string; readonly env: NodeJS.ProcessEnv } | undefined

/** Returns undefined if the broker accepts a connection within 3 s, else why not. */
export async function unreachable(): Promise<string | undefined> {
  try {
    const connection = await amqp.connect(RABBITMQ_URL, { timeout: 3000 })
    await connection.close()
    return undefined
  } catch (error) {
    return `RabbitMQ at ${new URL(RABBITMQ_URL).host} is unreachable (${(error as Error).message})`
  }
}

/**
 * Returns undefined if the tests can stop and start the broker with
 * `rabbitmqctl` (the broker is on this machine and `rabbitmqctl status`
 * answers), else why not.
 */
export async function uncontrolled(): Promise<string | undefined> {
  const host = new URL(RABBITMQ_URL).hostname
  if (!['127.0.0.1', 'localhost', '[::1]'].includes(host)) return `RABBITMQ_URL names another machine (${host})`
  try {
    await rabbitmqctl('status')
    return undefined
  } catch (error) {
    return `rabbitmqctl cannot control the broker (${(error as Error).message.split('\n')[0]})`
  }
}

/**
 * Runs `rabbitmqctl` with these arguments, on the node the tests started, or
 * else on this machine's own; throws with its output when it fails or takes
 * over a minute.
 */
export async function rabbitmqctl(...args: string[]): Promise<void> {
  if (started === undefined) {
    await run(installed('rabbitmqctl') ?? 'rabbitmqctl', args, { timeout: 60_000 })
  } else {
    const { bin, name, env } = started
    await run(join(bin, 'rabbitmqctl'), ['-n', name, ...args], { timeout: 60_000, env })
  }
}

/**
 * Makes sure a broker answers at RABBITMQ_URL: when none does and none was
 * given, starts a node of this machine's `rabbitmq-server` on 127.0.0.1:5672
 * and waits until it takes connections.
 *
 * @returns a function that stops the node if it was started here, and does nothing otherwise.
 * @throws with the node's output when it does not start within three minutes.
 */
export async function ensureBroker(): Promise<() => Promise<void>> {
  if (process.env.RABBITMQ_URL || (await unreachable()) === undefined) return async () => {}
  const server = rabbitMqServer()
  if (server === undefined) throw new Error('rabbitmq-server is not installed')
  const home = await mkdtemp(join(tmpdir(), 'es-rabbitmq-'))
  const name = `es-test-${randomBytes(4).toString('hex')}@localhost`
  await writeFile(join(home, 'enabled_plugins'), '[].')
  const env = {
    ...process.env,
    HOME: home,
    RABBITMQ_NODENAME: name,
    RABBITMQ_MNESIA_BASE: join(home, 'mnesia'),
    RABBITMQ_LOG_BASE: join(home, 'log'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(home, 'enabled_plugins'),
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    ERL_EPMD_ADDRESS: '127.0.0.1',
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '-kernel inet_dist_use_interface {127,0,0,1}',
  }
  const output = join(home, 'rabbitmq-server.log')
  const mapperWasRunning = await portMapperRunning()
  const node = spawn(server, [], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  node.stdout.pipe(createWriteStream(output))
  node.stderr.pipe(createWriteStream(output, { flags: 'a' }))
  const exited = new Promise((resolve) => node.once('exit', resolve))
  started = { name, bin: dirname(server), env }
  const stop = async () => {
    await rabbitmqctl('stop').catch(() => node.kill())
    await exited
    started = undefined
    if (!mapperWasRunning) await stopPortMapper()
    await rm(home, { recursive: true, force: true })
  }
  const why = await untilReachable(() => node.exitCode !== null)
  if (why !== undefined) {
    const log = await readFile(output, 'utf8').catch(() => '')
    await stop()
    throw new Error(`rabbitmq-server did not start within ${BOOT_MS / 1000} s: ${why}\n${log}`)
  }
  return stop
}

/** Polls the broker until it takes a connection (undefined), or `exited()` or the boot time says stop (why not). */
async function untilReachable(exited: () => boolean): Promise<string | undefined> {
  const deadline = Date.now() + BOOT_MS
  let why = await unreachable()
  while (why !== undefined && !exited() && Date.now() < deadline) {
    await delay(500)
    why = await unreachable()
  }
  return why
}

/** Returns true if the Erlang port mapper (epmd) is running on this machine. */
function portMapperRunning(): Promise<boolean> {
  return run(installed('epmd') ?? 'epmd', ['-names']).then(
    () => true,
    () => false,
  )
}

/**
 * Stops the Erlang port mapper that the node started, once no node is
 * registered with it any more (it refuses before; rabbitmqctl's own node
 * leaves a moment after the command returns).
 */
async function stopPortMapper(): Promise<void> {
  for (let tries = 0; tries < 20; tries++) {
    const said = await run(installed('epmd') ?? 'epmd', ['-kill']).then(
      ({ stdout, stderr }) => stdout + stderr,
      (error: Error) => error.message,
    )
    // "Killed", or "Cannot connect" when it is not running; anything else means nodes are still registered.
    if (/Killed|Cannot connect/.test(said)) return
    await delay(250)
  }
}
