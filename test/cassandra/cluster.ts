// A Cassandra cluster of several nodes on one machine, for the fault tests:
// node i on the loopback address 127.0.0.i (Linux routes all of 127.0.0.0/8
// to the loopback interface, so no alias needs to be configured), each a
// TestNode of server.ts, which a test may kill and start again.

import { createServer } from 'node:net'
import { setTimeout as delay } from 'node:timers/promises'
import cassandraDriver from 'cassandra-driver'
import type { CassandraNode } from './server.js'
import { abandonOnExit, listen, TestNode } from './server.js'

/** A cluster the tests started: where the driver connects, and its nodes, to kill and restart. */
export interface CassandraCluster extends CassandraNode {
  /** The nodes, the first being the seed; node i listens on 127.0.0.(i+1). */
  readonly nodes: readonly TestNode[]
  /**
   * Waits until every node, as coordinator, can write to all the others: a
   * node takes connections before gossip has told it the others are up.
   *
   * @throws naming the node that could not within {@link JOIN_MS}.
   */
  untilJoined(): Promise<void>
}

/** How long the nodes of a cluster may take to see each other up. */
export const JOIN_MS = 90_000

// A keyspace on every node, written at ALL to show that the coordinator reaches every replica.
const READY = 'es_cluster_ready'

/**
 * The native port of every node: cassandra-driver connects to the nodes it
 * discovers (system.peers) on one port, that of its `protocolOptions`, 9042
 * unless set; on another port it would reach only the contact points.
 */
export const CLUSTER_NATIVE_PORT = 9042

/**
 * Starts `size` nodes on 127.0.0.1, 127.0.0.2, ..., one after the other (a
 * node joins the ring through gossip with the seed, the first), all in data
 * centre `datacenter1`, and waits until each takes connections.
 *
 * @throws when port 9042 is taken on one of the addresses, or a node does not
 * start (with its output); every node started is removed then.
 */
export async function startCassandraCluster(size: number): Promise<CassandraCluster> {
  const addresses = Array.from({ length: size }, (_, i) => `127.0.0.${i + 1}`)
  const nativePort = await freeOnAll(addresses, CLUSTER_NATIVE_PORT)
  const storagePort = await freeOnAll(addresses)
  const seed = addresses[0] as string
  const nodes: TestNode[] = []
  const abandon = abandonOnExit(() => {
    for (const node of nodes) node.abandon()
  })
  const stop = async () => {
    abandon.cancel()
    await Promise.all(nodes.map((node) => node.remove()))
  }
  const contactPoints = addresses.map((address) => `${address}:${nativePort}`)
  const untilJoined = () => joined(contactPoints, size)
  try {
    for (const address of addresses) {
      const node = await TestNode.create({ address, nativePort, storagePort, seed })
      nodes.push(node)
      await node.start()
    }
    await untilJoined()
  } catch (error) {
    await stop()
    throw error
  }
  return { contactPoints, localDataCenter: 'datacenter1', nodes, stop, untilJoined }
}

/** Waits until a write at ALL coordinated by each node in turn succeeds. */
async function joined(contactPoints: readonly string[], size: number): Promise<void> {
  const { Client, policies, types } = cassandraDriver
  const localDataCenter = 'datacenter1'
  for (const endpoint of contactPoints) {
    const only = new policies.loadBalancing.AllowListPolicy(
      new policies.loadBalancing.DCAwareRoundRobinPolicy(localDataCenter),
      [endpoint],
    )
    const client = new Client({ contactPoints: [endpoint], localDataCenter, policies: { loadBalancing: only } })
    const deadline = Date.now() + JOIN_MS
    try {
      for (;;) {
        try {
          await client.execute(
            `CREATE KEYSPACE IF NOT EXISTS ${READY} WITH replication = {'class': 'SimpleStrategy', 'replication_factor': ${size}}`,
          )
          await client.execute(`CREATE TABLE IF NOT EXISTS ${READY}.nodes (endpoint text PRIMARY KEY)`)
          await client.execute(`INSERT INTO ${READY}.nodes (endpoint) VALUES (?)`, [endpoint], {
            prepare: true,
            consistency: types.consistencies.all,
          })
          break
        } catch (error) {
          if (Date.now() > deadline) {
            throw new Error(`Cassandra at ${endpoint} did not reach every node within ${JOIN_MS / 1000} s`, {
              cause: error,
            })
          }
          await delay(500)
        }
      }
    } finally {
      await client.shutdown()
    }
  }
}

/**
 * Returns a port free on every address: `wanted`, or any when it is 0.
 *
 * @throws naming the address when `wanted` is taken there.
 */
async function freeOnAll(addresses: readonly string[], wanted = 0): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    const servers = addresses.map(() => createServer())
    try {
      let port = wanted
      for (const [i, address] of addresses.entries()) {
        port = await listen(servers[i]!, address, port).catch((error: unknown) => {
          throw new Error(`Port ${port} of ${address} is taken (${String(error)})`, { cause: error })
        })
      }
      return port
    } catch (error) {
      if (wanted !== 0 || attempt === 10) {
        throw new Error(
          `The test cluster needs a port free on ${addresses.join(', ')}` +
            (wanted ? `: ${wanted}, as cassandra-driver reaches the nodes it discovers on one port` : ''),
          { cause: error },
        )
      }
    } finally {
      await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))))
    }
  }
}
