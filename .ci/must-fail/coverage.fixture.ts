import { expect, it } from 'vitest'
import { uuid4 } from '../../src/domain/ids.js'

// Passes, and covers almost nothing of src/, so the coverage threshold is missed.
it('passes and covers little', () => {
  expect(uuid4()).toHaveLength(36)
})
