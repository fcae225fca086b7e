// The services that some tests need and a user's machine may lack (a message
// broker; later a Java runtime, a browser). Where one is missing, its tests
// skip with a note and its entry point is left out of the coverage threshold,
// so `npm test` passes on a fresh machine; with CI set, they fail instead.
// The configuration (vitest.config.ts) and the tests ask the same question,
// `missing()`, which is synchronous so that the answer is known when the
// configuration loads.

import { accessSync, constants } from 'node:fs'
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
  missing(): string | undefined
}

/** True when running in continuous integration, where a missing service fails its tests instead of skipping them. */
export const IN_CI = process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false'

/**
 * Returns the path of an installed program: on PATH, or in the sbin
 * directories, where Debian installs servers but a user's PATH may not look.
 */
export function installed(program: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin']
  for (const dir of dirs.filter(Boolean)) {
    const path = join(dir, program)
    try {
      accessSync(path, constants.X_OK)
      return path
    } catch {}
  }
  return undefined
}

/**
 * RabbitMQ: a broker at RABBITMQ_URL, or Debian's `rabbitmq-server`, which the
 * RabbitMQ tests start themselves when it is not running (test/rabbitmq/fixtures.ts).
 */
export const rabbitMq: Service = {
  name: 'RabbitMQ',
  sources: 'src/rabbitmq/**',
  howTo: 'apt-get install -y rabbitmq-server (the tests start it), or set RABBITMQ_URL to a running broker',
  missing: () =>
    process.env.RABBITMQ_URL || installed('rabbitmq-server') ? undefined : 'rabbitmq-server is not installed',
}

/** Every service some tests need. */
export const SERVICES: readonly Service[] = [rabbitMq]

/** Returns the note of a service whose tests skip here. */
export function skipNote(service: Service, why: string): string {
  return `Skipping the ${service.name} tests: ${why}. To run them: ${service.howTo}`
}

/**
 * Returns why a service's tests skip here, or undefined when they run.
 *
 * @throws when the service is missing and CI is set: there, every test must run.
 */
export function skipReason(service: Service): string | undefined {
  const why = service.missing()
  if (why !== undefined && IN_CI) {
    throw new Error(`${why}, and CI is set, so the ${service.name} tests cannot be skipped: ${service.howTo}`)
  }
  return why
}

/** Returns the services whose tests skip in this run, with why, for the configuration. */
export function skippedServices(): { service: Service; why: string }[] {
  if (IN_CI) return []
  return SERVICES.flatMap((service) => {
    const why = service.missing()
    return why === undefined ? [] : [{ service, why }]
  })
}
