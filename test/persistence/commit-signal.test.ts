import { describe, expect, it } from 'vitest'
import { MemoryRecorder } from '../../src/memory/memory-recorder.js'
import { CommitSignal, followLogPages } from '../../src/persistence/commit-signal.js'
import type { SelectNotificationsOptions } from '../../src/persistence/recorder.js'
import type { Notification } from '../../src/persistence/stored-event.js'
import { range } from '../../src/testing/fixtures.js'

/** A memory recorder's log, with the start of each query made on it. */
async function logOf(events: number) {
  const recorder = new MemoryRecorder()
  await recorder.insertEvents(range('a', 1, events))
  const starts: number[] = []
  const source = {
    selectNotifications: (options: SelectNotificationsOptions) => {
      starts.push(options.start ?? 0)
      return recorder.selectNotifications(options)
    },
  }
  return { source, starts }
}

/** The ids of a page yielded, or undefined when the pages ended. */
const ids = (result: IteratorResult<readonly Notification[], void>) =>
  result.done ? undefined : result.value.map((n) => n.id)

describe('followLogPages', () => {
  it('reads the next page while the reader handles a full one, and waits for commits after one that is not', async () => {
    const { source, starts } = await logOf(25)
    const controller = new AbortController()
    const pages = followLogPages(source, new CommitSignal(), {
      pollMs: 10_000,
      batchSize: 10,
      signal: controller.signal,
    })
    const first = await pages.next()
    expect(ids(first)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    // The query of the second page was made before the reader asked for it.
    expect(starts).toEqual([0, 10])
    expect(ids(await pages.next())).toEqual([11, 12, 13, 14, 15, 16, 17, 18, 19, 20])
    expect(ids(await pages.next())).toEqual([21, 22, 23, 24, 25])
    // After a page that is not full, nothing is read until a commit (or the poll, or the end).
    expect(starts).toEqual([0, 10, 20])
    const ending = pages.next()
    controller.abort()
    expect((await ending).done).toBe(true)
    expect(starts).toEqual([0, 10, 20])
  })

  it('leaves a page read ahead unread when the reader stops, with no unhandled rejection when that read failed', async () => {
    const { source } = await logOf(20)
    let reads = 0
    const failing = {
      selectNotifications: (options: SelectNotificationsOptions) =>
        ++reads === 1 ? source.selectNotifications(options) : Promise.reject(new Error('read ahead failed')),
    }
    const pages = followLogPages(failing, new CommitSignal(), { pollMs: 10, batchSize: 10 })
    expect(ids(await pages.next())).toHaveLength(10)
    expect(reads).toBe(2)
    await pages.return(undefined)
  })
})
