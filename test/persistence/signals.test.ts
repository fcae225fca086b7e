import { getEventListeners } from 'node:events'
import { describe, expect, it } from 'vitest'
import { anySignal, withAnySignal } from '../../src/persistence/signals.js'
import { keptForAny } from '../fixtures/signals.js'

describe('anySignal', () => {
  it('aborts with the reason of whichever signal aborts first, or at once for one aborted already', () => {
    const [first, second] = [new AbortController(), new AbortController()]
    const any = anySignal([first.signal, undefined, second.signal])
    expect(any.signal.aborted).toBe(false)
    second.abort(new Error('second'))
    first.abort(new Error('first'))
    expect(any.signal.reason).toEqual(new Error('second'))
    expect(anySignal([new AbortController().signal, first.signal]).signal.reason).toEqual(new Error('first'))
  })

  it('is the signal itself when only one is given', () => {
    const only = new AbortController().signal
    expect(anySignal([undefined, only]).signal).toBe(only)
  })

  it('leaves nothing on a long-lived signal once disposed, however often it is made', async () => {
    const lasting = new AbortController()
    const kept = keptForAny(lasting.signal)
    for (let i = 0; i < 1000; i++) {
      await withAnySignal([lasting.signal, new AbortController().signal], async (signal) => {
        signal.addEventListener('abort', () => {})
      })
    }
    expect(getEventListeners(lasting.signal, 'abort')).toHaveLength(0)
    expect(keptForAny(lasting.signal)).toBe(kept)
  })

  it('aborts the signal of work in progress', async () => {
    const lasting = new AbortController()
    const work = withAnySignal([lasting.signal, new AbortController().signal], async (signal) => {
      await new Promise((resolve) => signal.addEventListener('abort', resolve))
      return signal.reason
    })
    lasting.abort(new Error('shutdown'))
    expect(await work).toEqual(new Error('shutdown'))
    expect(getEventListeners(lasting.signal, 'abort')).toHaveLength(0)
  })
})
