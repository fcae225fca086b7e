import type { TaggedEvent, TaggedEventType } from './tagged-event.js'

/**
 * One item of a {@link TaggedQuery}: it matches an event whose type is one of
 * `types` (any type when none are given) and whose tags include all of `tags`.
 */
export interface TaggedQueryItem {
  /** Event types, declared or by name; any type when empty or not given. */
  readonly types?: readonly (Pick<TaggedEventType, 'type'> | string)[]
  /** Tags an event must all have; none when empty or not given. */
  readonly tags?: readonly string[]
}

/** A query of tagged events: it matches an event that any of its items matches; no items match every event. */
export type TaggedQuery = TaggedQueryItem | readonly TaggedQueryItem[]

/** Returns the items of a query, and the names of their types. */
export function queryItems(query: TaggedQuery = []): { types: string[]; tags: string[] }[] {
  const items: readonly TaggedQueryItem[] = Array.isArray(query) ? query : [query as TaggedQueryItem]
  return items.map((item) => ({
    types: (item.types ?? []).map((type) => (typeof type === 'string' ? type : type.type)),
    tags: [...(item.tags ?? [])],
  }))
}

/** Returns true when an event of `type` with `tags` matches the query item (types none meaning any). */
export function matchesItem(
  item: { readonly types?: readonly string[]; readonly tags?: readonly string[] },
  type: string,
  tags: readonly string[],
): boolean {
  const { types = [], tags: required = [] } = item
  return (types.length === 0 || types.includes(type)) && required.every((tag) => tags.includes(tag))
}

/** How an event of one type changes the state of a {@link DecisionModel}. */
type Handler<S> = (state: S, event: TaggedEvent<never>) => S

/**
 * A decision model is the state one rule needs, folded from exactly the events
 * it depends on: an initial state, the tags its events must have, and for each
 * type of event it reads, how that changes the state. Its query reads the
 * events of those types with those tags (of any type with those tags, when it
 * handles none). Models are small and composed: a decision reads several at
 * once (see `DcbApplication.decide`), in one read whose query is the OR of theirs.
 *
 * A model is immutable: {@link DecisionModel.on} returns a new one. Handlers
 * return the new state and leave the one given as it is (the initial state is
 * shared by every fold of the model).
 *
 * @example
 * ```ts
 * const courseCapacity = (courseId: string) =>
 *   decisionModel({ initial: { defined: false, capacity: 0, subscribed: 0 }, tags: [tag('course', courseId)] })
 *     .on(CourseDefined, (state, e) => ({ ...state, defined: true, capacity: e.data.capacity }))
 *     .on(StudentSubscribed, (state) => ({ ...state, subscribed: state.subscribed + 1 }))
 * ```
 */
export class DecisionModel<S> {
  readonly #handlers: ReadonlyMap<string, Handler<S>>

  /** Makes a model; {@link decisionModel} is the usual way. */
  constructor(
    /** The state before any event. */
    readonly initial: S,
    /** The tags every event the model reads has. */
    readonly tags: readonly string[] = [],
    handlers: ReadonlyMap<string, Handler<S>> = new Map(),
  ) {
    this.#handlers = handlers
  }

  /**
   * Returns a model that also reads events of `type`, changing the state as
   * `handler` says (in place of a handler given before for that type).
   */
  on<P extends object>(type: TaggedEventType<P>, handler: (state: S, event: TaggedEvent<P>) => S): DecisionModel<S> {
    const handlers = new Map(this.#handlers)
    handlers.set(type.type, handler as Handler<S>)
    return new DecisionModel(this.initial, this.tags, handlers)
  }

  /** The names of the types of events the model reads; empty when it reads any type with its tags. */
  get types(): string[] {
    return [...this.#handlers.keys()]
  }

  /** The query of the events the model reads. */
  get query(): { types: string[]; tags: string[] } {
    return { types: this.types, tags: [...this.tags] }
  }

  /** True when the model changes its state on events of this type (and decoding them is worth it). */
  handles(type: string): boolean {
    return this.#handlers.has(type)
  }

  /** Returns the state after `event`: as its type's handler says, or `state` for a type it has none for. */
  evolve(state: S, event: TaggedEvent): S {
    const handler = this.#handlers.get(event.type)
    return handler === undefined ? state : handler(state, event as TaggedEvent<never>)
  }

  /** Returns the state after the events of `events` that the model reads, in order: for tests of a rule without a store. */
  fold(events: Iterable<TaggedEvent>): S {
    const { query } = this
    let state = this.initial
    for (const event of events) if (matchesItem(query, event.type, event.tags)) state = this.evolve(state, event)
    return state
  }
}

/** Returns a decision model with an initial state, reading events with all of `tags`; add handlers with `on`. */
export function decisionModel<S>(options: {
  readonly initial: S
  readonly tags?: readonly string[]
}): DecisionModel<S> {
  return new DecisionModel(options.initial, options.tags ?? [])
}

/** One decision model, or a record of them read together: what a decision reads. */
// biome-ignore lint/suspicious/noExplicitAny: a record of models of any states
export type DecisionModels = DecisionModel<any> | { readonly [name: string]: DecisionModel<any> }

/** The state of decision models: a model's state, or a record of the states of a record of models. */
export type StateOf<M extends DecisionModels> =
  M extends DecisionModel<infer S> ? S : { [K in keyof M]: M[K] extends DecisionModel<infer S> ? S : never }

/**
 * Decision models read together, with their states as a fold goes: the
 * parts, in order, and their states, which {@link ComposedModel.state} returns
 * in the shape the models were given in.
 */
export class ComposedModel<M extends DecisionModels> {
  /** The models, in the order given. */
  readonly parts: readonly DecisionModel<unknown>[]
  readonly #names: readonly string[] | undefined
  readonly #states: unknown[]

  /** Starts a fold of `models` from their initial states. */
  constructor(models: M) {
    if (models instanceof DecisionModel) {
      this.parts = [models]
      this.#names = undefined
    } else {
      this.#names = Object.keys(models)
      this.parts = Object.values(models)
    }
    this.#states = this.parts.map((part) => part.initial)
  }

  /** Applies an event to the part at `index`. */
  evolve(index: number, event: TaggedEvent): void {
    this.#states[index] = this.parts[index]!.evolve(this.#states[index], event)
  }

  /** Returns the states so far: the model's, or a record of the models' by their names. */
  state(): StateOf<M> {
    const names = this.#names
    if (names === undefined) return this.#states[0] as StateOf<M>
    return Object.fromEntries(names.map((name, index) => [name, this.#states[index]])) as StateOf<M>
  }
}
