/**
 * @capture/testkit — real NATS servers for integration suites: one JetStream server per suite (container or
 * child process), a JetStream cluster for failover tests, free loopback ports, and a private Linux desktop
 * (Xvfb, PulseAudio, espeak-ng) for real-device capture tests, and ffmpeg measurements of media (A/V sync, volume,
 * colour).
 */
export * from "./AvSync.js"
export * from "./ChatProvider.js"
export * from "./FreePorts.js"
export * from "./LinuxDesktop.js"
export * from "./MediaTools.js"
export * from "./NatsCluster.js"
export * from "./NatsServer.js"
export * from "./Poll.js"
export * from "./RtmpPublisher.js"
export * from "./Screen.js"
export * from "./SessionCommands.js"
export * from "./Speech.js"
export * from "./TranscriptionProvider.js"
