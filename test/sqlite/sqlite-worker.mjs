// A worker thread that writes through the built-in SQLite recorder, for
// sqlite-workers.test.ts. It is plain JavaScript because worker threads do not
// run TypeScript; the test hands it the URL of the backend compiled from src.
import { parentPort, workerData } from 'node:worker_threads'

const { moduleUrl, path, worker, count, claims } = workerData
const { sqlite } = await import(moduleUrl)
const state = (text) => new TextEncoder().encode(text)

// Wait for the others, so that every worker opens the new file at once.
parentPort.postMessage({ ready: true })
await new Promise((resolve) => parentPort.once('message', resolve))

const recorders = await sqlite({ path }).open('app')
const { events } = recorders
const ids = []
const wins = []
let claim = 1
let version = 1
while (version <= count) {
  const batch = []
  for (let size = 1 + (version % 3); size > 0 && version <= count; size--, version++) {
    batch.push({
      originatorId: `worker-${worker}`,
      originatorVersion: version,
      topic: 'written',
      state: state(`${worker}`),
    })
  }
  const tracking = { applicationName: `upstream-${worker}`, notificationId: version - 1 }
  ids.push(...(await events.insertEvents(batch, { tracking })))
  // Every worker tries to process the same upstream notifications: each one
  // must be recorded once, by whichever worker gets there first.
  if (claim <= claims && version % 4 === 0) {
    const tracking = { applicationName: 'shared', notificationId: claim }
    // The event is this worker's own, so only the tracking record can refuse it.
    const event = {
      originatorId: `claim-${claim}-by-${worker}`,
      originatorVersion: 1,
      topic: 'claimed',
      state: state(`${claim}`),
    }
    try {
      const [id] = await events.insertEvents([event], { tracking })
      wins.push({ claim, id })
    } catch (error) {
      if (error.name !== 'TrackingConflictError') throw error
    }
    claim++
  }
}
await recorders.close()
parentPort.postMessage({ ids, wins })
