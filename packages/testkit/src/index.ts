/**
 * @capture/testkit — real NATS servers for integration suites: one JetStream server per suite (container or
 * child process), a JetStream cluster for failover tests, and free loopback ports.
 */
export * from "./FreePorts.js"
export * from "./NatsCluster.js"
export * from "./NatsServer.js"
export * from "./Poll.js"
export * from "./SessionCommands.js"
