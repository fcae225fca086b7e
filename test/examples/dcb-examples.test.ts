import { backends } from '../fixtures/backends.js'
import { describeDcbExamples } from './dcb-examples.js'

for (const [name, newStore] of backends()) describeDcbExamples(name, newStore)
