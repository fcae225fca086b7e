import { describe, expect, it } from 'vitest'
import {
  Aggregate,
  Application,
  IntegrityError,
  memory,
  ProgrammingError,
  retryOnConflict,
  TrackingConflictError,
  VersionConflictError,
} from '../../src/index.js'

const conflict = () => new VersionConflictError({ originatorId: 'a', originatorVersion: 2, table: 'app_events' })

describe('retryOnConflict', () => {
  it('runs the function again after a VersionConflictError, and returns what it returns', async () => {
    const runs: number[] = []
    const conflicts: [VersionConflictError, number][] = []
    const result = await retryOnConflict(
      async (attempt) => {
        runs.push(attempt)
        if (attempt < 3) throw conflict()
        return 'done'
      },
      { onConflict: (error, attempt) => conflicts.push([error, attempt]) },
    )
    expect(result).toBe('done')
    expect(runs).toEqual([1, 2, 3])
    expect(conflicts.map(([error, attempt]) => [error.originatorId, attempt])).toEqual([
      ['a', 1],
      ['a', 2],
    ])
  })

  it('throws the last conflict once the attempts are used up', async () => {
    let runs = 0
    const last = conflict()
    const retrying = retryOnConflict(
      () => {
        runs++
        throw runs === 5 ? last : conflict()
      },
      { attempts: 5 },
    )
    await expect(retrying).rejects.toBe(last)
    expect(runs).toBe(5)
  })

  it.each([
    ['a tracking conflict', new TrackingConflictError({ applicationName: 'up', notificationId: 1, table: 't' })],
    ['an IntegrityError that names no version', new IntegrityError('another rule')],
    ['any other error', new RangeError('no')],
  ])('throws %s at once', async (_, error) => {
    let runs = 0
    await expect(
      retryOnConflict(() => {
        runs++
        throw error
      }),
    ).rejects.toBe(error)
    expect(runs).toBe(1)
  })

  it('refuses attempts that are not a positive integer, and a negative delay', async () => {
    for (const attempts of [0, 1.5, Number.NaN]) {
      await expect(retryOnConflict(() => 1, { attempts })).rejects.toThrow(ProgrammingError)
    }
    await expect(retryOnConflict(() => 1, { delayMs: -1 })).rejects.toThrow(ProgrammingError)
  })

  it('lets writers racing on one aggregate all succeed', async () => {
    class Tally extends Aggregate {
      count = 0
      static readonly Started = Tally.created('retry-test:Tally.Started')
      static readonly Added = Tally.event('retry-test:Tally.Added', (tally) => {
        tally.count++
      })
      add(): void {
        this.trigger(Tally.Added, {})
      }
    }
    const persistence = memory()
    await using one = new Application({ name: 'Tallies', persistence })
    await using two = new Application({ name: 'Tallies', persistence })
    const tally = Tally.create(Tally.Started, {})
    await one.save(tally)
    let conflicts = 0
    const add = (app: Application) =>
      retryOnConflict(
        async () => {
          const fresh = await app.repository.get(Tally, tally.id)
          fresh.add()
          await app.save(fresh)
        },
        { attempts: 6, onConflict: () => conflicts++ },
      )
    await Promise.all([one, two, one, two, one, two].map(add))
    expect((await two.repository.get(Tally, tally.id)).count).toBe(6)
    expect(conflicts).toBeGreaterThan(0)
  })
})
