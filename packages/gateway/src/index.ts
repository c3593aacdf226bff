/**
 * @capture/gateway — Will hold the REST + WebSocket gateway that turns HTTP traffic into session commands and delivers signed webhooks (issue: Gateway).
 *
 * Nothing is exported yet: this package is the home of that work, wired into the build so it
 * starts under the same compiler settings and lint rules as the rest of the tree.
 */
export {}
