import { AsyncLocalStorage } from 'node:async_hooks'
import { TopicError } from './errors.js'

// biome-ignore lint/suspicious/noExplicitAny: a registry holds classes of any constructor signature
type AnyClass = abstract new (...args: any[]) => unknown

/** What a topic names: a class, and what declared it. */
interface Claim {
  readonly cls: AnyClass
  /** An event type declared by an aggregate class, or any other class (an aggregate class, a snapshot class). */
  readonly kind: 'event type' | 'class'
  /** The aggregate class that declared an event type; the class itself otherwise. */
  readonly owner: AnyClass
}

/** The topics declared in one scope, over those of the scope it was made in (none for the process-wide registry). */
interface Registry {
  readonly claims: Map<string, Claim>
  readonly parent: Registry | undefined
}

const processWide: Registry = { claims: new Map(), parent: undefined }
const scopes = new AsyncLocalStorage<Registry>()
/** Each class's own topic and claim; weak, so that classes replaced by a reloaded module can be collected. */
const declared = new WeakMap<AnyClass, { readonly topic: string; readonly claim: Claim }>()

/**
 * Declares that `topic` names `cls`: an event type declared by the aggregate
 * class `declaredBy`, or any other class when that is not given. A class has
 * one topic; older topics can be added with {@link registerTopic} so stored
 * records written under them still load.
 *
 * Topics are process-wide (see {@link withTopics} for a scope of their own).
 * A module evaluated again (hot module reload, a test runner that imports it
 * anew) declares its classes again: a topic declared again by a class of the
 * same kind and name, from another evaluation, names the new class from then
 * on (the latest wins).
 *
 * @throws TopicError if the topic is empty, or already names a class of
 * another kind or name, or another event type of the same aggregate class.
 */
export function defineTopic(topic: string, cls: AnyClass, declaredBy?: AnyClass): void {
  if (typeof topic !== 'string' || topic.length === 0) {
    throw new TopicError(`A topic must be a non-empty string, got ${JSON.stringify(topic)}`)
  }
  const claim: Claim =
    declaredBy === undefined ? { cls, kind: 'class', owner: cls } : { cls, kind: 'event type', owner: declaredBy }
  claimTopic(topic, claim)
  if (!declared.has(cls)) declared.set(cls, { topic, claim })
}

/**
 * Makes an old topic resolve to `cls`, for classes that were renamed or moved
 * (domain model migration). Records stored under `oldTopic` then load as `cls`.
 *
 * @throws TopicError if the old topic already names another class (as {@link defineTopic} says).
 */
export function registerTopic(oldTopic: string, cls: AnyClass): void {
  claimTopic(oldTopic, declared.get(cls)?.claim ?? { cls, kind: 'class', owner: cls })
}

/**
 * Runs `fn` with a topic registry of its own, layered over the current one,
 * and returns what it returns. Topics declared while it runs (by classes
 * declared inside it, or by the async work it starts) are seen only there,
 * shadow those declared outside, and are forgotten when it settles.
 *
 * It is the way to test a domain model migration in one process: declare
 * version 1 of a class inside `withTopics`, store its events, then read them
 * back with version 2, declared outside with the same topics.
 *
 * @example
 * ```ts
 * const id = await withTopics(async () => {
 *   class Dog extends Aggregate {
 *     static Registered = Dog.created('dogschool:Dog.Registered', (dog, e: { name: string }) => { ... })
 *   }
 *   const dog = Dog.create(Dog.Registered, { name: 'Fido' })
 *   await school.save(dog)
 *   return dog.id
 * })
 * const dog = await school.repository.get(DogV2, id) // declared with an upcaster for version 1
 * ```
 */
export function withTopics<T>(fn: () => T): T {
  return scopes.run({ claims: new Map(), parent: current() }, fn)
}

/**
 * Returns the topic of a class: the one given when it was declared, or its static
 * `topic` property (aggregate classes).
 *
 * @throws TopicError if the class has no topic.
 */
export function getTopic(cls: AnyClass): string {
  const topic = topicOf(cls)
  if (topic !== undefined) return topic
  throw new TopicError(`${cls.name || 'This class'} has no topic: declare it with "static readonly topic = '...'"`)
}

/**
 * Returns the class a topic names.
 *
 * @throws TopicError if no class was declared with that topic (the module that
 * declares it may not be imported yet, or the class was renamed without
 * {@link registerTopic}).
 */
export function resolveTopic(topic: string): AnyClass {
  const cls = classOf(topic)
  if (cls === undefined) {
    throw new TopicError(
      `Unknown topic '${topic}': import the module that declares it, or call registerTopic('${topic}', NewClass) if it was renamed`,
    )
  }
  return cls
}

/** Returns the topic of a class, or undefined when it has none. */
export function topicOf(cls: AnyClass): string | undefined {
  const known = declared.get(cls)
  if (known !== undefined) return known.topic
  const topic = Object.hasOwn(cls, 'topic') ? (cls as { topic?: unknown }).topic : undefined
  if (typeof topic !== 'string') return undefined
  defineTopic(topic, cls)
  return topic
}

/** Returns the class a topic names, or undefined when none does. */
export function classOf(topic: string): AnyClass | undefined {
  for (let registry: Registry | undefined = current(); registry !== undefined; registry = registry.parent) {
    const claim = registry.claims.get(topic)
    if (claim !== undefined) return claim.cls
  }
  return undefined
}

function current(): Registry {
  return scopes.getStore() ?? processWide
}

/** Records the claim in the current registry, replacing a declaration of the same thing from another evaluation. */
function claimTopic(topic: string, claim: Claim): void {
  const { claims } = current()
  const existing = claims.get(topic)
  if (existing !== undefined && existing.cls !== claim.cls && !isRedeclaration(existing, claim)) {
    throw new TopicError(conflict(topic, existing, claim))
  }
  claims.set(topic, claim)
}

/**
 * Returns true if `next` is `previous` declared again by its module evaluated
 * anew: the same kind of thing, of the same name, from another evaluation (a
 * new owner class). Two event types of one aggregate class are not.
 */
function isRedeclaration(previous: Claim, next: Claim): boolean {
  return previous.kind === next.kind && previous.owner !== next.owner && previous.owner.name === next.owner.name
}

function conflict(topic: string, existing: Claim, claim: Claim): string {
  if (existing.owner === claim.owner) {
    return `${claim.owner.name} declares two event types with topic '${topic}': give each a topic of its own`
  }
  return (
    `Topic '${topic}' already names ${describe(existing)}, so it cannot also name ${describe(claim)}: ` +
    `give it a topic of its own (topics are process-wide; to test a new version of a class beside the old one, declare the old one inside withTopics())`
  )
}

function describe({ cls, kind, owner }: Claim): string {
  return kind === 'event type'
    ? `an event type of ${owner.name || 'an anonymous class'}`
    : `the class ${cls.name || '(anonymous)'}`
}
