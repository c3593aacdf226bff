/**
 * @capture/recorder — Will hold the desktop recorder client: channel discovery, ffmpeg capture into segments, resumable upload (issue: Recorder).
 *
 * Nothing is exported yet: this package is the home of that work, wired into the build so it
 * starts under the same compiler settings and lint rules as the rest of the tree.
 */
export {}
