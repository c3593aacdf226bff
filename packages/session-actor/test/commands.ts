/** The shared session command builders (from @capture/testkit). */
export { cmd, create, defaultChannels, exportOf, finish, media, start, stop } from "@capture/testkit"
