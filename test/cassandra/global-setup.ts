// One Cassandra node for every Cassandra test file of a run, started only when
// a file asks for it: a JVM per file would cost each file a boot of half a
// minute or more on two cores, and a run without Cassandra tests (a file
// filter, a machine without Java) should start none. This runs in the test
// runner's own process, which outlives the test files: it answers the files'
// requests on a local HTTP port (given to them as `cassandraNodeUrl`), starts
// the node on the first (through server.ts, which picks free ports and cleans
// up), and stops it when the run ends. Files ask through `sharedCassandra()`
// (shared-node.ts). CASSANDRA_CONTACT_POINTS still names an existing cluster.

import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { TestProject } from 'vitest/node'
import { type CassandraNode, startCassandra } from './server.js'

declare module 'vitest' {
  export interface ProvidedContext {
    /** Where a test file asks for the run's Cassandra node (see shared-node.ts). */
    cassandraNodeUrl: string
  }
}

/** What a test file receives: where the node is, or why it could not start. */
export type NodeAnswer =
  | { readonly contactPoints: string[]; readonly localDataCenter: string }
  | { readonly error: string }

/** Listens for the test files' requests; returns the teardown that stops the node if one was started. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  let node: Promise<CassandraNode> | undefined
  const server = createServer((_request, response) => {
    // Started once: a node that failed to start is not tried again by every file (each try takes minutes).
    node ??= startTimed()
    node.then(
      ({ contactPoints, localDataCenter }) => answer(response, 200, { contactPoints, localDataCenter }),
      (error: unknown) => answer(response, 500, { error: error instanceof Error ? error.message : String(error) }),
    )
  })
  const port = await listen(server)
  project.provide('cassandraNodeUrl', `http://127.0.0.1:${port}/node`)
  return async () => {
    await new Promise((resolve) => server.close(resolve))
    await (await node?.catch(() => undefined))?.stop()
  }
}

async function startTimed(): Promise<CassandraNode> {
  const started = Date.now()
  const node = await startCassandra()
  if (process.env.EVENTSOURCING_TIMING) console.log(`Cassandra node started in ${Date.now() - started} ms`)
  return node
}

function answer(response: import('node:http').ServerResponse, status: number, body: NodeAnswer): void {
  response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port))
  })
}
