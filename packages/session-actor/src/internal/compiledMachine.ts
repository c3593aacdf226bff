/**
 * The session machine compiled to a transition table.
 *
 * XState's interpreter costs ~20 µs per event (more under GC pressure): too much for replaying
 * millions of events, and half the host's budget per command. The machine is flat (no nested or
 * parallel states, no eventless or delayed transitions), so at load its definition compiles to a
 * table of (state, event type) → candidates, each a guard, a target, reducers, and the exit/entry
 * effects a state change runs. The machine stays the single definition; the table is derived.
 */
import type { SessionEvent } from "@capture/protocol"
import {
  sessionGuards as guards,
  type ReducerName,
  sessionReducers as reducers,
  type SessionEffect,
  type SessionState,
  type SessionStateValue,
  sessionMachine,
  UnappliableEvent,
  type Update,
} from "../SessionMachine.js"
export type EffectSpec = { readonly type: SessionEffect["type"]; readonly params: unknown }

export interface CompiledTransition {
  readonly guard: keyof typeof guards | undefined
  readonly target: SessionStateValue | undefined
  readonly reducers: ReadonlyArray<Update>
  /** Exit actions of the source, then entry actions of the target (only when the state changes). */
  readonly effects: ReadonlyArray<EffectSpec>
}

const effectSpecs = (actions: ReadonlyArray<unknown>, where: string): ReadonlyArray<EffectSpec> =>
  actions.map((action) => {
    const spec = action as { type?: unknown; params?: unknown }
    if (spec.type !== "scheduleTimer" && spec.type !== "cancelTimer") {
      throw new Error(`${where} runs ${String(spec.type)}, which the compiled machine cannot run`)
    }
    return { type: spec.type, params: spec.params }
  })

const compile = (): ReadonlyMap<string, ReadonlyArray<CompiledTransition>> => {
  const table = new Map<string, ReadonlyArray<CompiledTransition>>()
  for (const [key, node] of Object.entries(sessionMachine.root.states)) {
    if (Object.keys(node.states).length > 0 || node.always || node.after.length > 0) {
      throw new Error(`session machine state ${key} is not flat; the compiled fold cannot represent it`)
    }
    const exit = effectSpecs(node.exit, `exit of ${key}`)
    for (const [eventType, candidates] of node.transitions) {
      table.set(
        `${key}/${eventType}`,
        candidates.map((candidate) => {
          const guard = candidate.guard
          if (guard !== undefined && (typeof guard !== "string" || !(guard in guards))) {
            throw new Error(`unsupported guard on ${key}/${eventType}`)
          }
          const targetNode = candidate.target?.[0]
          const changes = targetNode !== undefined && targetNode.key !== key
          return {
            guard: guard as keyof typeof guards | undefined,
            target: targetNode?.key as SessionStateValue | undefined,
            effects: changes ? [...exit, ...effectSpecs(targetNode.entry, `entry of ${targetNode.key}`)] : [],
            reducers: candidate.actions.map((action) => {
              const name = typeof action === "string" ? action : (action as { type?: unknown }).type
              if (typeof name !== "string" || !(name in reducers)) {
                throw new Error(
                  `transition ${key}/${eventType} runs ${String(name)}, which the fold cannot run`,
                )
              }
              return reducers[name as ReducerName] as Update
            }),
          }
        }),
      )
    }
  }
  return table
}

const compiled = compile()

/** The transition `event` takes from `state`; throws `UnappliableEvent` when there is none. */
export const match = (state: SessionState, event: SessionEvent): CompiledTransition => {
  if (event.sequence !== state.context.sequence + 1) throw new UnappliableEvent(event, state.value)
  const candidates = compiled.get(`${state.value}/${event.type}`)
  if (candidates !== undefined) {
    for (const candidate of candidates) {
      if (candidate.guard === undefined || guards[candidate.guard]({ context: state.context, event }))
        return candidate
    }
  }
  throw new UnappliableEvent(event, state.value)
}

/** The state a compiled transition leads to. */
export const reduce = (
  state: SessionState,
  event: SessionEvent,
  candidate: CompiledTransition,
): SessionState => {
  let context = state.context
  // Spread, not Object.assign: V8 clones object literals by shape, several times faster here.
  for (const update of candidate.reducers) context = { ...context, ...update(context, event) }
  return { value: candidate.target ?? state.value, context }
}
