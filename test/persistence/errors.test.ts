import { describe, expect, it } from 'vitest'
import { errorMessage } from '../../src/persistence/errors.js'

describe('errorMessage', () => {
  it("returns an error's message, or the string form of anything else thrown", () => {
    expect(errorMessage(new TypeError('bad value'))).toBe('bad value')
    expect(errorMessage('plain text')).toBe('plain text')
    expect(errorMessage(42)).toBe('42')
    expect(errorMessage(undefined)).toBe('undefined')
  })

  it('returns the message of the suppressed error of a SuppressedError, which explains what failed', () => {
    // Built by hand: SuppressedError is not a global on every supported Node.js version.
    const suppressed = Object.assign(new Error('An error suppressed by another error'), {
      error: new Error('closing failed'),
      suppressed: new Error('the save failed'),
    })
    expect(errorMessage(suppressed)).toBe('the save failed')
  })
})
