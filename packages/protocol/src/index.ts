/**
 * @capture/protocol — every wire and domain shape of Capture, defined once with effect/Schema.
 */
export * from "./CaptureApiShapes.js"
export * from "./CaptureSession.js"
export * from "./Channel.js"
export * from "./Decode.js"
export * from "./ErrorCode.js"
export * from "./HttpEnvelope.js"
export * from "./Ids.js"
export * from "./LifecycleEvent.js"
export * from "./MediaSegment.js"
export * from "./SessionCommand.js"
export * from "./SessionEvent.js"
export * from "./SessionStatus.js"
export * from "./WebhookDelivery.js"
export * from "./WebhookEnvelope.js"
export * from "./WebSocketMessage.js"
