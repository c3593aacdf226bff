/**
 * @capture/nats-server — nats-server as a child process, for `capture serve` and the test fixtures.
 */
export * from "./NatsServerProcess.js"
