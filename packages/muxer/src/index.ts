/**
 * @capture/muxer — Will hold the muxer service: consumes stopped/export events and builds the muxed video and raw channel assets (issue: Muxer).
 *
 * Nothing is exported yet: this package is the home of that work, wired into the build so it
 * starts under the same compiler settings and lint rules as the rest of the tree.
 */
export {}
