// The test configuration of the project with `include` pointed at one fixture
// of this folder, for `.ci/run` to prove that the test command fails when it
// must: with the embedded servers started by the same global setup, a failing
// test, a test file that fails to load, and a missed coverage threshold must
// each make the runner exit non-zero. FIXTURE names the fixture file.
import { defineConfig } from 'vitest/config'
import base from '../../vitest.config.js'

// Replaced, not merged: vitest's mergeConfig would add the project's own tests to the list.
export default defineConfig(async (env) => {
  const project = await base(env)
  return { ...project, test: { ...project.test, include: [`.ci/must-fail/${process.env.FIXTURE}.fixture.ts`] } }
})
