/**
 * @capture/gateway — the capture REST API (effect HttpApi), accounts and credentials, live events
 * over WebSocket, and signed, retried webhooks.
 */
export * from "./access/RequestNotes.js"
export * from "./accounts/AccountStore.js"
export { AlertDeliveryLog } from "./alerts/AlertDeliveryLog.js"
export * from "./api/CaptureApi.js"
export * from "./api/ClientErrors.js"
export * from "./Gateway.js"
export * from "./GatewayContext.js"
export * from "./Limits.js"
export * from "./webhooks/CallbackUrlPolicy.js"
export * from "./webhooks/DeliveryLog.js"
export * from "./webhooks/RetrySchedule.js"
export * from "./webhooks/WebhookBuckets.js"
export * from "./webhooks/WebhookDelivery.js"
export * from "./webhooks/WebhookDispatcher.js"
export * from "./websocket/WebSocketHub.js"
