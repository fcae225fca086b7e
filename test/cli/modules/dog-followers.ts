// The followers of a user's dog school: one exported, following only
// registrations, and one exported only inside the system, following all.
import { Dog, DogSchool } from '../../../src/cli/dog-school.js'
import { ProcessApplication, System } from '../../../src/index.js'

export class Registrar extends ProcessApplication {
  static override readonly followTopics = [Dog.Registered]

  protected policy(): void {}
}

class Auditor extends ProcessApplication {
  static override readonly applicationName = 'Auditor'

  protected policy(): void {}
}

export const system = new System([
  [DogSchool, Registrar],
  [DogSchool, Auditor],
])
