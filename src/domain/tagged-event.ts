import { frozenCopy } from './domain-event.js'
import { TopicError } from './errors.js'
import { defineTopic, resolveTopic } from './topics.js'
import type { Upcaster, Versioning } from './upcasting.js'

/**
 * A tagged event is a fact of a dynamic consistency boundary (DCB) store:
 * its `type`, its `data` (the payload) and its `tags`, which its type derives
 * from the data. Decisions read the events of the types and tags they depend
 * on, rather than the events of one aggregate. Declare types with
 * {@link taggedEvent}; `event instanceof CourseDefined` narrows `data`.
 *
 * An event is frozen, and so is its data (arrays and plain objects in it are
 * copied and frozen), so that nothing can rewrite history by changing it later.
 */
export class TaggedEvent<P extends object = object> {
  /** The type's name: the stable string the event is stored under. */
  declare readonly type: string
  /** The payload. */
  declare readonly data: Readonly<P>
  /**
   * The tags the type derives from the data. Tags are stored beside the data
   * to be queried; a store configured to hash some tags' values holds them
   * hashed, but an event read back has them as derived here.
   */
  declare readonly tags: readonly string[]
  /** The event's position in its store: undefined until it is read from there. */
  declare readonly position: number | undefined
  /** Facts about the event rather than of it (a correlation id, who asked), stored with it; undefined when none. */
  declare readonly metadata: Readonly<Record<string, unknown>> | undefined

  /** Makes an event of a declared type; declared types call this. */
  constructor(
    type: string,
    data: P,
    tags: readonly string[],
    position?: number,
    metadata?: Readonly<Record<string, unknown>>,
  ) {
    const fields = { type, data: frozenCopy(data), tags: Object.freeze([...tags]), position }
    Object.assign(this, fields, { metadata: frozenCopy(metadata) })
    Object.freeze(this)
  }
}

/**
 * A declared type of tagged event: constructible from its payload `P`, with
 * its name, how its tags derive from a payload, and a versioning for its
 * stored form.
 */
export interface TaggedEventType<P extends object = object> extends Versioning {
  /**
   * Makes an event of this type, tagged as {@link TaggedEventType.tagsOf} says.
   * (The instance type restates `data`, so that `event instanceof Type`
   * narrows a `TaggedEvent`: TypeScript keeps the wider of two instances of one generic class.)
   */
  new (data: P, options?: TaggedEventInit): TaggedEvent<P> & { readonly data: Readonly<P> }
  /** The stable name events of this type are stored under, e.g. `'courses:StudentSubscribed'`. */
  readonly type: string
  /** Returns the tags of an event with this payload. */
  tagsOf(data: P): string[]
}

/** What a tagged event is made with besides its data. */
export interface TaggedEventInit {
  /** Facts about the event (a correlation id, who asked), stored with it as its data is (transcoded, encrypted). */
  readonly metadata?: Readonly<Record<string, unknown>>
}

/** Options for declaring a tagged event type. */
export interface TaggedEventOptions {
  /**
   * Upcasters for stored data written by older versions of this type:
   * `upcast[0]` turns version 1 into 2, and so on. The type's class version is
   * `upcast.length + 1`.
   */
  readonly upcast?: readonly Upcaster[]
}

/** The field name a tagged event's payload cannot use: the stored data keeps the class version there. */
export const RESERVED_DATA_FIELD = 'classVersion'

/**
 * Declares a type of tagged event: its name (a topic, unique in the process
 * like every topic) and how the tags of an event derive from its payload. The
 * payload type is the type of `tags`'s parameter; a type without tags takes it
 * as a type argument instead: `taggedEvent<{ at: Date }>('clock:Ticked')`.
 *
 * @example
 * ```ts
 * const StudentSubscribed = taggedEvent(
 *   'courses:StudentSubscribed',
 *   (e: { studentId: string; courseId: string }) => [tag('student', e.studentId), tag('course', e.courseId)],
 * )
 * const event = new StudentSubscribed({ studentId: 's1', courseId: 'c1' })
 * event.tags // ['student:s1', 'course:c1']
 * ```
 * @throws TopicError if the name is empty or names something else already.
 */
export function taggedEvent<P extends object>(
  type: string,
  tags: (data: P) => readonly string[] = () => [],
  options: TaggedEventOptions = {},
): TaggedEventType<P> {
  const upcasters = options.upcast ?? []
  const cls = class extends TaggedEvent<P> {
    static readonly type = type
    static readonly upcasters = upcasters
    static readonly classVersion = upcasters.length + 1
    static tagsOf(data: P): string[] {
      return [...tags(data)]
    }
    constructor(data: P, options: TaggedEventInit = {}) {
      checkData(type, data)
      super(type, data, tags(data), undefined, options.metadata)
    }
  }
  Object.defineProperty(cls, 'name', { value: type })
  defineTopic(type, cls)
  return cls
}

/**
 * Returns the tag `name:value`, the usual form of a tag: the name says what
 * the value is (`course:c1`, `student:s1`), so that values of different kinds
 * never meet, and tags can be hashed by name (see `TagHasher`).
 *
 * @throws TypeError if the name is empty or holds a colon.
 */
export function tag(name: string, value: string | number | bigint): string {
  if (name === '' || name.includes(':')) {
    throw new TypeError(`A tag's name is a non-empty string without a colon, got ${JSON.stringify(name)}`)
  }
  return `${name}:${value}`
}

/** Returns the name of a tag (what comes before its first colon), or undefined for a tag without one. */
export function tagName(tag: string): string | undefined {
  const colon = tag.indexOf(':')
  return colon > 0 ? tag.slice(0, colon) : undefined
}

/**
 * Returns the declared tagged event type of a name.
 *
 * @throws TopicError if no tagged event type is declared with that name (the
 * module that declares it may not be imported yet), or the name is a topic of another kind.
 */
export function taggedEventType(type: string): TaggedEventType {
  const cls = resolveTopic(type)
  if (!(cls.prototype instanceof TaggedEvent)) {
    throw new TopicError(`Topic '${type}' names ${cls.name}, which is not a tagged event type`)
  }
  return cls as unknown as TaggedEventType
}

/**
 * Returns an event of a declared type as read from a store: its data (upcast
 * already) with the tags its type derives, its position there and its metadata.
 */
export function restoreTaggedEvent<P extends object>(
  type: TaggedEventType<P>,
  data: P,
  position: number,
  metadata?: Readonly<Record<string, unknown>>,
): TaggedEvent<P> {
  // Runs the base constructor alone: the declared type's would check the data as new.
  return Reflect.construct(TaggedEvent, [type.type, data, type.tagsOf(data), position, metadata], type)
}

function checkData(type: string, data: object): void {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new TypeError(`The data of ${type} is an object of fields, got ${data === null ? 'null' : typeof data}`)
  }
  if (RESERVED_DATA_FIELD in data) {
    throw new TypeError(`The data of ${type} uses the reserved field name '${RESERVED_DATA_FIELD}': rename it`)
  }
}
