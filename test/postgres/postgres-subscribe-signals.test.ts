// A subscription's signal is combined with the recorders' closing signal,
// which lives as long as the recorders: the combination must end with the
// subscription (AbortSignal.any's, on Node 20, would stay with the closing signal).

import { getEventListeners } from 'node:events'
import { setTimeout as delay } from 'node:timers/promises'
import { describe, expect, it } from 'vitest'
import { postgres } from '../../src/postgres/index.js'
import { event } from '../fixtures/recorders.js'
import { keptForAny } from '../fixtures/signals.js'
import { freshSchema, postgresUrl } from './fixtures.js'

describe('postgres: subscriptions and the recorders’ closing signal', () => {
  it('leave nothing on it once they end, by a break or by their own signal', async () => {
    const { schema, drop } = freshSchema()
    try {
      await using recorders = await postgres({ url: postgresUrl(), schema }).open('app')
      await recorders.events.insertEvents([event('a', 1)])
      // The recorders' own, private: what the subscriptions are combined with.
      const { closing } = (recorders.events as unknown as { options: { closing: AbortSignal } }).options
      const [listeners, kept] = [getEventListeners(closing, 'abort').length, keptForAny(closing)]
      for (let i = 0; i < 50; i++) {
        const stop = new AbortController()
        for await (const notification of recorders.events.subscribe({ signal: stop.signal })) {
          expect(notification.id).toBe(1)
          break
        }
        const waiting = recorders.events.subscribe({ gt: 1, signal: stop.signal })[Symbol.asyncIterator]().next()
        await delay(1)
        stop.abort()
        expect(await waiting).toEqual({ done: true, value: undefined })
      }
      expect(getEventListeners(closing, 'abort')).toHaveLength(listeners)
      expect(keptForAny(closing)).toBe(kept)
    } finally {
      await drop()
    }
  })
})
