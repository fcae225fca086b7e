// The Cassandra node that the Cassandra test files of a run share: started by
// the run (global-setup.ts) when the first file asks, and stopped when the run
// ends, so a file's `stop()` does nothing. Each file keeps to its own keyspace.

import { get } from 'node:http'
import { inject } from 'vitest'
import type { NodeAnswer } from './global-setup.js'
import { type CassandraNode, namedCluster, startCassandra } from './server.js'

let ownNode: Promise<CassandraNode> | undefined

/**
 * Returns the cluster named by CASSANDRA_CONTACT_POINTS, or else the run's
 * shared node, started on the first call of the run. Without the run's global
 * setup (a configuration that lacks it), this process starts a node of its
 * own on the first call, which it kills when it exits.
 *
 * @throws with the node's output when it cannot start.
 */
export async function sharedCassandra(): Promise<CassandraNode> {
  const named = namedCluster()
  if (named) return named
  const url = inject('cassandraNodeUrl')
  if (url === undefined) {
    ownNode ??= startCassandra()
    const { contactPoints, localDataCenter } = await ownNode
    return { contactPoints, localDataCenter, stop: async () => {} }
  }
  const answer = await ask(url)
  if ('error' in answer) throw new Error(`The Cassandra node of this test run could not start: ${answer.error}`)
  return { ...answer, stop: async () => {} }
}

/** Asks the run for its node; no timeout, since a first run resolves cassandra-all with Maven before it boots. */
function ask(url: string): Promise<NodeAnswer> {
  return new Promise((resolve, reject) => {
    get(url, (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => {
        body += chunk
      })
      response.on('end', () => {
        try {
          resolve(JSON.parse(body) as NodeAnswer)
        } catch (error) {
          reject(new Error(`The test run answered ${response.statusCode} with no node: ${body}`, { cause: error }))
        }
      })
    }).on('error', reject)
  })
}
