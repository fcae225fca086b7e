import { AsyncLocalStorage } from 'node:async_hooks'
import { fileURLToPath } from 'node:url'
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
  /** The module file that declared it (see {@link declaringFile}); undefined when that is not known. */
  readonly file: string | undefined
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
 * Where each aggregate class was declared, and in which registry: those of its
 * first event type. Its static `topic` is claimed there when first looked up
 * (see {@link topicOf}), wherever and whenever that happens.
 */
const homes = new WeakMap<AnyClass, { readonly file: string | undefined; readonly registry: Registry }>()

/**
 * Declares that `topic` names `cls`: an event type declared by the aggregate
 * class `declaredBy`, or any other class when that is not given. A class has
 * one topic; older topics can be added with {@link registerTopic} so stored
 * records written under them still load.
 *
 * Topics are process-wide (see {@link withTopics} for a scope of their own).
 * A module evaluated again (hot module reload, a test runner that imports it
 * anew) declares its classes again: a topic declared again by a class of the
 * same name and kind, in the same module file (query and hash of its URL
 * aside), names the new class from then on (the latest wins).
 *
 * @throws TopicError if the topic is empty, or already names a class declared
 * elsewhere (even one of the same name), a class of another kind, or another
 * event type of the same aggregate class.
 */
export function defineTopic(topic: string, cls: AnyClass, declaredBy?: AnyClass): void {
  const file = declaringFile()
  const registry = current()
  const claim: Claim =
    declaredBy === undefined
      ? { cls, kind: 'class', owner: cls, file }
      : { cls, kind: 'event type', owner: declaredBy, file }
  claimTopic(registry, topic, claim)
  if (!declared.has(cls)) declared.set(cls, { topic, claim })
  if (declaredBy !== undefined && !homes.has(declaredBy)) homes.set(declaredBy, { file, registry })
}

/**
 * Makes an old topic resolve to `cls`, for classes that were renamed or moved
 * (domain model migration). Records stored under `oldTopic` then load as `cls`.
 *
 * @throws TopicError if the old topic already names another class (as {@link defineTopic} says).
 */
export function registerTopic(oldTopic: string, cls: AnyClass): void {
  const claim = declared.get(cls)?.claim ?? { cls, kind: 'class', owner: cls, file: declaringFile() }
  claimTopic(current(), oldTopic, claim)
}

/**
 * Runs `fn` with a topic registry of its own, layered over the current one,
 * and returns what it returns. Topics declared while it runs (by classes
 * declared inside it, or by the async work it starts) are seen only there,
 * shadow those declared outside, and are forgotten when it settles. The static
 * topic of an aggregate class declared outside stays outside, even when first
 * looked up inside (see {@link topicOf}).
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

/**
 * Returns the topic of a class, or undefined when it has none. A static `topic`
 * is claimed when first looked up, in the registry the class was declared in
 * when that is known (an aggregate class with event types), so that looking it
 * up inside {@link withTopics} does not hide it from outside, nor looking it up
 * outside publish a class declared inside.
 *
 * @throws TopicError if the static topic is empty or names something else (as {@link defineTopic} says).
 */
export function topicOf(cls: AnyClass): string | undefined {
  const known = declared.get(cls)
  if (known !== undefined) return known.topic
  const topic = Object.hasOwn(cls, 'topic') ? (cls as { topic?: unknown }).topic : undefined
  if (typeof topic !== 'string') return undefined
  // The stack here shows who looks the topic up, not where the class was
  // declared: the file is that of its first event type, or unknown.
  const home = homes.get(cls)
  const registry = home?.registry ?? current()
  const claim: Claim = { cls, kind: 'class', owner: cls, file: home?.file }
  claimTopic(registry, topic, claim)
  // A class of unknown home found inside a scope is claimed there only for
  // now: remembered, it would keep its topic hidden from the process-wide
  // registry, where getTopic would find it and resolveTopic would not.
  if (home !== undefined || registry === processWide) declared.set(cls, { topic, claim })
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

/** Records the claim in a registry, replacing a declaration of the same thing from another evaluation. */
function claimTopic({ claims }: Registry, topic: string, claim: Claim): void {
  if (typeof topic !== 'string' || topic.length === 0) {
    throw new TopicError(`A topic must be a non-empty string, got ${JSON.stringify(topic)}`)
  }
  const existing = claims.get(topic)
  if (existing !== undefined && existing.cls !== claim.cls && !isRedeclaration(existing, claim)) {
    throw new TopicError(conflict(topic, existing, claim))
  }
  claims.set(topic, claim)
}

/**
 * Returns true if `next` is `previous` declared again by its module evaluated
 * anew: the same kind of thing, by an owner class of the same name, in the
 * same module file. Two classes of one name in two files (two bounded
 * contexts' `Account`) are not; nor two event types of one aggregate class;
 * and an unknown file is never the same. The line is not compared: an edit
 * that hot module reload evaluates again moves declarations. So two classes of
 * one name made by one factory are taken for a declaration again (the latest
 * wins).
 */
function isRedeclaration(previous: Claim, next: Claim): boolean {
  return (
    previous.kind === next.kind &&
    previous.owner !== next.owner &&
    previous.owner.name === next.owner.name &&
    previous.file !== undefined &&
    previous.file === next.file
  )
}

/**
 * Returns the module file of the code that is declaring a topic: that of the
 * first frame of the call stack outside this library's own files, by its URL
 * or path without `?query` and `#hash`, which loaders add to evaluate a
 * module again (Vite's `?t=...`). V8 gives the stack as structured call sites
 * through a temporary `Error.prepareStackTrace`: no text is formatted or
 * parsed. Returns undefined when it cannot be known (a runtime without V8's
 * call sites, a stack of library frames only): a declaration again is then
 * refused, which is safe.
 */
function declaringFile(): string | undefined {
  const { prepareStackTrace, stackTraceLimit } = Error
  let callSites: unknown
  try {
    Error.prepareStackTrace = (_error, structured) => structured
    Error.stackTraceLimit = 16
    const holder: { stack?: unknown } = {}
    Error.captureStackTrace(holder)
    callSites = holder.stack
  } finally {
    Error.prepareStackTrace = prepareStackTrace
    Error.stackTraceLimit = stackTraceLimit
  }
  if (!Array.isArray(callSites)) return undefined
  const [own, ...callers] = (callSites as NodeJS.CallSite[]).map(fileOf)
  if (own === undefined) return undefined
  // This file is <library>/domain/topics.ts (or .js once built): the library is its folder's parent.
  const library = own.replace(/[^/\\]+[/\\][^/\\]+$/, '')
  return callers.find((file) => file !== undefined && !file.startsWith(library))
}

/** Returns the file of a stack frame without query and hash, or undefined for the runtime's own code. */
function fileOf(callSite: NodeJS.CallSite): string | undefined {
  const name = callSite.getFileName() ?? callSite.getScriptNameOrSourceURL()
  if (!name || name.startsWith('node:') || callSite.isNative()) return undefined
  return name.replace(/[?#].*$/s, '')
}

/** Returns a file as a path when it is a file URL, for messages. */
function displayed(file: string): string {
  try {
    return file.startsWith('file:') ? fileURLToPath(file) : file
  } catch {
    return file // a file URL with a host, say
  }
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

function describe({ cls, kind, owner, file }: Claim): string {
  const what =
    kind === 'event type'
      ? `an event type of ${owner.name || 'an anonymous class'}`
      : `the class ${cls.name || '(anonymous)'}`
  return file === undefined ? what : `${what} (in ${displayed(file)})`
}
