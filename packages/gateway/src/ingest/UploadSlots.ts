/**
 * Bounds the segment uploads one credential has in flight on this gateway, so one client token
 * cannot hold a gateway's sockets and buffers with many slow uploads at once (the recorder
 * uploads each channel's segments in order: a few at a time). Per process by design: it bounds
 * what this process holds.
 */
export class UploadSlots {
  private readonly inFlight = new Map<string, number>()

  constructor(private readonly perCredential: number) {}

  /** A slot for `credentialId`, released by calling the result once; undefined when all are taken. */
  take(credentialId: string): (() => void) | undefined {
    const taken = this.inFlight.get(credentialId) ?? 0
    if (taken >= this.perCredential) return undefined
    this.inFlight.set(credentialId, taken + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      const left = (this.inFlight.get(credentialId) ?? 1) - 1
      if (left === 0) this.inFlight.delete(credentialId)
      else this.inFlight.set(credentialId, left)
    }
  }
}
