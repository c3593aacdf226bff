/**
 * @capture/session-actor — capture sessions as event-sourced XState actors on NATS JetStream.
 */
export * from "./ActorHost.js"
export * from "./Decide.js"
export * from "./DurableTimers.js"
export * from "./EventStore.js"
export * from "./ExportPolicy.js"
export * from "./Lifecycle.js"
export * from "./Projector.js"
export * from "./SessionFold.js"
export * from "./SessionHistory.js"
export * from "./SessionMachine.js"
export * from "./SessionReactor.js"
export * from "./SessionReadModel.js"
export * from "./SessionRuntime.js"
export * from "./SnapshotStore.js"
export * from "./Topology.js"
