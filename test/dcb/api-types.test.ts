import { describe, expectTypeOf, it } from 'vitest'
import {
  DcbApplication,
  type DecisionModel,
  decisionModel,
  memory,
  type TaggedEvent,
  tag,
  taggedEvent,
} from '../../src/index.js'

// Each `@ts-expect-error` sits on the exact line that must not compile: were the
// line to compile, the directive would be unused and `tsc` would fail.

const Opened = taggedEvent('types-dcb:Opened', (e: { account: string; limit: number }) => [tag('account', e.account)])
const Closed = taggedEvent<{ account: string }>('types-dcb:Closed')

describe('the types of the DCB API', () => {
  it('type an event by its payload', () => {
    const event = new Opened({ account: 'a', limit: 5 })
    expectTypeOf(event.data).toEqualTypeOf<Readonly<{ account: string; limit: number }>>()
    // @ts-expect-error: a field of the wrong type
    new Opened({ account: 'a', limit: '5' })
    // @ts-expect-error: a missing field
    new Opened({ account: 'a' })
    // @ts-expect-error: a type without tags takes its payload type as a type argument
    new Closed({ acount: 'a' })
  })

  it('type a model state and its handlers, and a composed state by name', async () => {
    const limit = decisionModel({ initial: 0, tags: [tag('account', 'a')] }).on(Opened, (_, e) => {
      expectTypeOf(e).toMatchTypeOf<TaggedEvent<{ account: string; limit: number }>>()
      return e.data.limit
    })
    expectTypeOf(limit).toEqualTypeOf<DecisionModel<number>>()
    // @ts-expect-error: a handler returns the state's type
    decisionModel({ initial: 0 }).on(Opened, () => 'no')
    const closed = decisionModel({ initial: false }).on(Closed, () => true)
    await using app = new DcbApplication({ name: 'TypesDcb', persistence: memory() })
    const { state } = await app.evaluate({ limit, closed })
    expectTypeOf(state).toEqualTypeOf<{ limit: number; closed: boolean }>()
    await app.decide({ limit, closed }, ({ limit, closed }) => {
      expectTypeOf(limit).toEqualTypeOf<number>()
      expectTypeOf(closed).toEqualTypeOf<boolean>()
      return []
    })
    // @ts-expect-error: a decision returns events
    await app.decide(limit, () => 'none').catch(() => {})
  })

  it('narrow a read event by instanceof', () => {
    const read = new Closed({ account: 'a' }) as TaggedEvent
    if (read instanceof Opened) expectTypeOf(read.data.limit).toEqualTypeOf<number>()
  })
})
