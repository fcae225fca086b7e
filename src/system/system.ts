import type { Application, ApplicationOptions } from '../application/application.js'
import { ProgrammingError } from '../persistence/errors.js'
import { ProcessApplication } from './process-application.js'

/** An application class that a system can make: any `Application` subclass with the usual constructor. */
export type ApplicationClass<A extends Application = Application> = (new (
  options?: ApplicationOptions,
) => A) & {
  readonly applicationName?: string
  readonly name: string
}

/** Returns the name an application class gives its instances when none is passed. */
export function applicationName(cls: ApplicationClass): string {
  return cls.applicationName ?? cls.name
}

/**
 * A graph of applications: each pipe `[A, B, C]` says that B follows A and C
 * follows B. Pipes may share applications and form cycles, as in
 * `new System([[Orders, Reservations, Orders], [Orders, Payments, Orders]])`.
 * Every application that follows another must be a {@link ProcessApplication}.
 *
 * @throws ProgrammingError for a pipe of fewer than two applications, two
 * classes with the same name, or a follower that is not a process application.
 */
export class System {
  readonly #classes = new Map<string, ApplicationClass>()
  readonly #leaders = new Map<string, string[]>()

  /** Makes the system from its pipes. */
  constructor(pipes: readonly (readonly ApplicationClass[])[]) {
    for (const pipe of pipes) {
      if (pipe.length < 2) {
        throw new ProgrammingError(`A pipe needs at least two applications, got [${pipe.map(applicationName)}]`)
      }
      for (const cls of pipe) this.#add(cls)
      for (let index = 1; index < pipe.length; index++) this.#follow(pipe[index]!, pipe[index - 1]!)
    }
  }

  /** The names of all applications, in the order first declared. */
  get names(): string[] {
    return [...this.#classes.keys()]
  }

  /** The names of the applications that follow others. */
  get followers(): string[] {
    return [...this.#leaders.keys()]
  }

  /**
   * Returns the class of the named application.
   *
   * @throws ProgrammingError naming the known applications when there is none of that name.
   */
  get(name: string): ApplicationClass {
    const cls = this.#classes.get(name)
    if (cls === undefined) {
      throw new ProgrammingError(`No application named '${name}' in this system; it has ${this.names.join(', ')}`)
    }
    return cls
  }

  /** Returns the names of the applications that the named one follows, empty when none. */
  leadersOf(name: string): string[] {
    this.get(name)
    return [...(this.#leaders.get(name) ?? [])]
  }

  #add(cls: ApplicationClass): void {
    const name = applicationName(cls)
    const known = this.#classes.get(name)
    if (known !== undefined && known !== cls) {
      throw new ProgrammingError(`Two application classes are named '${name}': give one a static applicationName`)
    }
    this.#classes.set(name, cls)
  }

  #follow(follower: ApplicationClass, leader: ApplicationClass): void {
    const name = applicationName(follower)
    if (!(follower.prototype instanceof ProcessApplication)) {
      throw new ProgrammingError(`${name} follows ${applicationName(leader)}, so it must extend ProcessApplication`)
    }
    const leaders = this.#leaders.get(name) ?? []
    if (!leaders.includes(applicationName(leader))) leaders.push(applicationName(leader))
    this.#leaders.set(name, leaders)
  }
}
