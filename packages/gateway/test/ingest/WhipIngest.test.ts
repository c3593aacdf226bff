/**
 * What a WHIP offer may carry: H.264 (copied) or VP8 (encoded) video and Opus audio; an offer of
 * nothing else is refused before anything is admitted or started.
 */
import { describe, expect, it } from "vitest"
import { offeredMedia } from "../../src/ingest/WhipIngest.js"

const offer = (...sections: ReadonlyArray<string>) =>
  ["v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "t=0 0", ...sections, ""].join("\r\n")
const AUDIO_OPUS = "m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000"
const VIDEO = (...codecs: ReadonlyArray<string>) =>
  [
    `m=video 9 UDP/TLS/RTP/SAVPF ${codecs.map((_, i) => 96 + i).join(" ")}`,
    ...codecs.map((codec, i) => `a=rtpmap:${96 + i} ${codec}/90000`),
  ].join("\r\n")

describe("offeredMedia", () => {
  it("prefers H.264 to VP8 and takes Opus", () => {
    expect(offeredMedia(offer(AUDIO_OPUS, VIDEO("VP8", "H264", "VP9")))).toEqual({
      video: "H264",
      audio: true,
    })
    expect(offeredMedia(offer(AUDIO_OPUS, VIDEO("VP9", "VP8")))).toEqual({ video: "VP8", audio: true })
  })

  it("takes an offer of one kind only", () => {
    expect(offeredMedia(offer(AUDIO_OPUS))).toEqual({ video: undefined, audio: true })
    expect(offeredMedia(offer(VIDEO("H264")))).toEqual({ video: "H264", audio: false })
  })

  it("refuses codecs the recording cannot carry, naming them", () => {
    const refused = offeredMedia(offer("m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000", VIDEO("AV1")))
    expect(refused).toMatchObject({ error_code: "unsupported_codec", field: "body" })
    expect("message" in refused && refused.message).toMatch(/AV1.*PCMU/)
    // Good video does not carry bad audio along (nor the other way round).
    expect(
      offeredMedia(offer("m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=rtpmap:0 PCMU/8000", VIDEO("H264"))),
    ).toMatchObject({
      error_code: "unsupported_codec",
    })
  })

  it("refuses a body that is no SDP offer", () => {
    expect(offeredMedia("hello")).toMatchObject({ error_code: "invalid_request", field: "body" })
  })
})
