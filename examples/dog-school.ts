// The dog school example. Its code lives in src/cli/dog-school.ts, because the
// `eventsourcing demo` command runs it and the published package does not ship
// this folder; it is re-exported here so that the examples stay in one place.
export { Dog, type DogData, DogSchool } from '../src/cli/dog-school.js'
