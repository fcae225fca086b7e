// What each follower of a user's module follows, by the name its tables
// carry: how `trackers` and the studio's followers view count how far behind
// a follower is in the notifications it would process, not in all of them.
import { ProgrammingError } from '../persistence/errors.js'
import { ProcessApplication, topicsOf } from '../system/process-application.js'
import { type ApplicationClass, applicationName, System } from '../system/system.js'
import { loadUserModule, type UserModule } from './user-module.js'

/** A user's module given to count followers' topics declares no follower. */
export class FollowersNotFoundError extends ProgrammingError {}

/**
 * The topics each follower follows (undefined: all), by application name in
 * lower case, as its tables spell it.
 */
export type FollowedTopics = ReadonlyMap<string, readonly string[] | undefined>

/**
 * Returns the topics followed by the process applications of a user's module:
 * the `ProcessApplication` subclasses it exports, and those of each `System`
 * it exports. Each is named as its instances are when no name is passed in
 * code: its static `applicationName`, else its class name. An application
 * made with another `name` is not found by it.
 *
 * @returns an empty map when the module declares no process application.
 * @throws ProgrammingError when two different classes have the same name.
 * @throws TopicError when a followed event class has no topic.
 */
export function followedTopicsOf(file: string, module: UserModule): FollowedTopics {
  const classes = new Map<string, ProcessClass>()
  for (const cls of Object.values(module).flatMap(processClasses)) {
    const name = applicationName(cls).toLowerCase()
    const known = classes.get(name)
    if (known !== undefined && known !== cls) {
      throw new ProgrammingError(
        `Module ${file} has two process applications named '${name}': give one a static applicationName`,
      )
    }
    classes.set(name, cls)
  }
  return new Map([...classes].map(([name, cls]) => [name, topicsOf(cls.followTopics)]))
}

/**
 * Imports a user's module (see {@link loadUserModule}) and returns the topics
 * its process applications follow (see {@link followedTopicsOf}).
 *
 * @throws UserModuleError when it cannot be loaded.
 * @throws FollowersNotFoundError when it declares no process application.
 */
export async function loadFollowedTopics(file: string): Promise<FollowedTopics> {
  const followed = followedTopicsOf(file, await loadUserModule(file))
  if (followed.size === 0) {
    throw new FollowersNotFoundError(
      `Module ${file} exports no ProcessApplication subclass, nor a System with one: ` +
        "export the followers' classes (or their System), or give the topics with --topic " +
        '(a module that imports another copy of eventsourcing than this command runs declares none it can see)',
    )
  }
  return followed
}

/** A process application class, as a module exports it. */
type ProcessClass = ApplicationClass<ProcessApplication> & Pick<typeof ProcessApplication, 'followTopics'>

/** The process application classes of one export: itself, or those of a system. */
function processClasses(value: unknown): ProcessClass[] {
  if (value instanceof System) return value.names.map((name) => value.get(name)).filter(isProcessClass)
  return isProcessClass(value) ? [value] : []
}

function isProcessClass(value: unknown): value is ProcessClass {
  return typeof value === 'function' && value.prototype instanceof ProcessApplication
}
