import { afterAll } from 'vitest'
import { postgres } from '../../src/postgres/index.js'
import { describeDcbExamples } from '../examples/dcb-examples.js'
import { freshSchema, postgresUrl } from './fixtures.js'

const drops: (() => Promise<void>)[] = []

afterAll(async () => {
  for (const drop of drops) await drop()
})

describeDcbExamples('PostgreSQL', () => {
  const { schema, drop } = freshSchema()
  drops.push(drop)
  return () => postgres({ url: postgresUrl(), schema })
})
