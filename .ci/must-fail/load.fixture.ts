import { it } from 'vitest'
// A module that does not exist: this test file fails to load, on purpose.
import { missing } from './no-such-module.js'

it('is never collected', () => {
  missing()
})
