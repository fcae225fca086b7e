import { TopicError } from './errors.js'

// biome-ignore lint/suspicious/noExplicitAny: a registry holds classes of any constructor signature
type AnyClass = abstract new (...args: any[]) => unknown

const classesByTopic = new Map<string, AnyClass>()
const topicsByClass = new Map<AnyClass, string>()

/**
 * Declares that `topic` names `cls`. A class has one topic; older topics can be
 * added with {@link registerTopic} so stored records written under them still load.
 *
 * @throws TopicError if the topic already names another class.
 */
export function defineTopic(topic: string, cls: AnyClass): void {
  if (typeof topic !== 'string' || topic.length === 0) {
    throw new TopicError(`A topic must be a non-empty string, got ${JSON.stringify(topic)}`)
  }
  const existing = classesByTopic.get(topic)
  if (existing !== undefined && existing !== cls) {
    throw new TopicError(
      `Topic '${topic}' already names another class (${existing.name}): give ${cls.name} a topic of its own`,
    )
  }
  classesByTopic.set(topic, cls)
  if (!topicsByClass.has(cls)) topicsByClass.set(cls, topic)
}

/**
 * Makes an old topic resolve to `cls`, for classes that were renamed or moved
 * (domain model migration). Records stored under `oldTopic` then load as `cls`.
 */
export function registerTopic(oldTopic: string, cls: AnyClass): void {
  const existing = classesByTopic.get(oldTopic)
  if (existing !== undefined && existing !== cls) {
    throw new TopicError(`Topic '${oldTopic}' already names ${existing.name}, so it cannot also name ${cls.name}`)
  }
  classesByTopic.set(oldTopic, cls)
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
  const known = topicsByClass.get(cls)
  if (known !== undefined) return known
  const declared = Object.hasOwn(cls, 'topic') ? (cls as { topic?: unknown }).topic : undefined
  if (typeof declared !== 'string') return undefined
  defineTopic(declared, cls)
  return declared
}

/** Returns the class a topic names, or undefined when none does. */
export function classOf(topic: string): AnyClass | undefined {
  return classesByTopic.get(topic)
}
