// The services that some tests need and a user's machine may lack (a message
// broker, Java and Maven for Cassandra, Chromium for the studio). Where one is missing,
// its tests skip with a note and its entry point is left out of the coverage threshold,
// so `npm test` passes on a fresh machine; with CI set, they fail instead.
// The configuration (vitest.config.ts), when it loads, and the tests ask the
// same question, `missing()`.

import { accessSync, constants } from 'node:fs'
import { connect } from 'node:net'
import { delimiter, join } from 'node:path'

/** A service that the tests of one entry point need. */
export interface Service {
  /** The service's name, for notes. */
  readonly name: string
  /** The source files (a glob) whose tests need the service. */
  readonly sources: string
  /** How to get the service, for the note of skipped tests. */
  readonly howTo: string
  /** Returns why the service cannot be had on this machine, or undefined when it can. */
  missing(): Promise<string | undefined>
}

/** True when running in continuous integration, where a missing service fails its tests instead of skipping them. */
export const IN_CI = process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false'

/**
 * Returns the path of an installed program: on PATH, or in the sbin
 * directories, where Debian installs servers but a user's PATH may not look.
 */
export function installed(program: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin']
  return dirs
    .filter(Boolean)
    .map((dir) => join(dir, program))
    .find(isExecutable)
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK)
    return true
  } catch {
    return false
  }
}

/**
 * Returns the path of the script that runs a RabbitMQ node as the calling
 * user: Debian's, behind its `rabbitmq-server` wrapper (which only root may
 * run), or the `rabbitmq-server` found otherwise.
 */
export function rabbitMqServer(): string | undefined {
  const debian = '/usr/lib/rabbitmq/bin/rabbitmq-server'
  return isExecutable(debian) ? debian : installed('rabbitmq-server')
}

/**
 * RabbitMQ: a broker at RABBITMQ_URL, or one answering on 127.0.0.1:5672, or
 * this machine's rabbitmq-server, a node of which the tests start themselves
 * (test/rabbitmq/broker.ts).
 */
export const rabbitMq: Service = {
  name: 'RabbitMQ',
  sources: 'src/rabbitmq/**',
  howTo: 'apt-get install -y rabbitmq-server (the tests start it), or set RABBITMQ_URL to a running broker',
  missing: async () => {
    if (process.env.RABBITMQ_URL || rabbitMqServer() !== undefined || (await answers(5672))) return undefined
    return 'rabbitmq-server is not installed, and no broker answers on 127.0.0.1:5672'
  },
}

/**
 * Apache Cassandra: a cluster at CASSANDRA_CONTACT_POINTS, or else a node the
 * tests start themselves from `cassandra-all`, which Maven resolves, run by
 * this machine's Java (test/cassandra/server.ts).
 */
export const cassandra: Service = {
  name: 'Cassandra',
  sources: 'src/cassandra/**',
  howTo:
    'apt-get install -y openjdk-17-jre-headless maven (the tests resolve cassandra-all from Maven Central and start a node), or set CASSANDRA_CONTACT_POINTS to a running cluster',
  missing: async () => {
    if (process.env.CASSANDRA_CONTACT_POINTS) return undefined
    // The tests run $JAVA_HOME/bin/java when JAVA_HOME is set, else the java on PATH (test/cassandra/server.ts).
    const lacking = [
      ...(process.env.JAVA_HOME || installed('java') ? [] : ['java']),
      ...(installed('mvn') ? [] : ['mvn']),
    ]
    return lacking.length === 0 ? undefined : `${lacking.join(' and ')} not found on PATH`
  },
}

/** Returns the Chromium the browser tests drive: CHROMIUM_PATH, else Debian's /usr/bin/chromium, else a chromium on PATH. */
export function chromiumPath(): string | undefined {
  const given = process.env.CHROMIUM_PATH
  if (given) return given
  return isExecutable('/usr/bin/chromium') ? '/usr/bin/chromium' : installed('chromium')
}

/** Chromium, headless, for the studio's end-to-end tests (test/cli/browser.ts drives it with playwright-core). */
export const chromium: Service = {
  name: 'Chromium',
  sources: 'src/cli/studio/page/**',
  howTo: 'apt-get install -y chromium, or set CHROMIUM_PATH to a Chromium or Chrome executable',
  missing: async () => (chromiumPath() === undefined ? 'chromium is not installed' : undefined),
}

/** Returns true if something accepts a TCP connection on this port of 127.0.0.1 within a second. */
function answers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, timeout: 1000 })
    const end = (answered: boolean) => {
      socket.destroy()
      resolve(answered)
    }
    socket.once('connect', () => end(true))
    socket.once('timeout', () => end(false))
    socket.once('error', () => end(false))
  })
}

/** Every service some tests need. */
export const SERVICES: readonly Service[] = [rabbitMq, cassandra, chromium]

/** Returns the note of a service whose tests skip here. */
export function skipNote(service: Service, why: string): string {
  return `Skipping the ${service.name} tests: ${why}. To run them: ${service.howTo}`
}

/**
 * Returns why a service's tests skip here, or undefined when they run.
 *
 * @throws when the service is missing and CI is set: there, every test must run.
 */
export async function skipReason(service: Service): Promise<string | undefined> {
  const why = await service.missing()
  if (why !== undefined && IN_CI) {
    throw new Error(`${why}, and CI is set, so the ${service.name} tests cannot be skipped: ${service.howTo}`)
  }
  return why
}

/** Returns the services whose tests skip in this run, with why, for the configuration. */
export async function skippedServices(): Promise<{ service: Service; why: string }[]> {
  if (IN_CI) return []
  const found = await Promise.all(SERVICES.map(async (service) => ({ service, why: await service.missing() })))
  return found.filter((entry): entry is { service: Service; why: string } => entry.why !== undefined)
}
