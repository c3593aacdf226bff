/**
 * Chromium (a WHIP publisher nobody here wrote: its own WebRTC stack, H.264 and Opus from its
 * fake camera and microphone) → WHIP → `capture serve` (gateway + muxer) → the exported MP4.
 * A small page served on 127.0.0.1 publishes with `RTCPeerConnection` and `fetch` to the
 * `whip_url` of a `source: "whip"` session, with ICE on 127.0.0.1 only. Refused publishes (no or
 * a wrong token, another session's token, a body that is not SDP, codecs the recording cannot
 * carry, a second publisher, a stopped session) are answered with a JSON reason and store
 * nothing. The publisher deletes its resource and publishes again within the grace period: the
 * same session goes on; once it leaves for good (its connection closed, no DELETE) the session
 * stops and exports one video with both streams, as long as what was recorded.
 */

import { mkdtemp, rm } from "node:fs/promises"
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { MediaStore } from "@capture/media"
import { type NatsServerHandle, startNatsServer } from "@capture/testkit"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import type { Browser, Page } from "playwright-core"
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from "vitest"
import { launchChromium } from "./browser.js"
import { killIfRunning } from "./cli.js"
import { type CaptureServer, pollUntil, sleep, startCaptureServer } from "./endToEnd.js"
import { probe } from "./media.js"
import { expectPushedExport } from "./pushedExport.js"

/** The publisher: getUserMedia (Chromium's fake devices), an offer with 127.0.0.1 UDP candidates only, RFC 9725's POST and DELETE. */
const PUBLISHER_PAGE = `<!doctype html><html><body><script>
const publishers = new Map()
window.publish = async (url, token, videoCodec) => {
  const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 360, frameRate: 25 }, audio: true })
  const pc = new RTCPeerConnection()
  for (const track of stream.getTracks()) {
    const transceiver = pc.addTransceiver(track, { direction: "sendonly", streams: [stream] })
    if (track.kind === "video" && videoCodec !== undefined) {
      const codecs = RTCRtpReceiver.getCapabilities("video").codecs
      transceiver.setCodecPreferences(codecs.filter((codec) => codec.mimeType === "video/" + videoCodec))
    }
  }
  await pc.setLocalDescription(await pc.createOffer())
  await new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve()
    pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && resolve())
  })
  const offer = pc.localDescription.sdp.split("\\r\\n")
    .filter((line) => !line.startsWith("a=candidate:") || (line.includes(" 127.0.0.1 ") && line.includes(" udp ")))
    .join("\\r\\n")
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/sdp", authorization: "Bearer " + token },
    body: offer,
  })
  const text = await response.text()
  if (response.status !== 201) {
    pc.close()
    for (const track of stream.getTracks()) track.stop()
    return { status: response.status, body: JSON.parse(text) }
  }
  await pc.setRemoteDescription({ type: "answer", sdp: text })
  const location = new URL(response.headers.get("location"), url).href
  publishers.set(location, { pc, stream, token })
  await new Promise((resolve, reject) => {
    const check = () => {
      if (pc.connectionState === "connected") resolve()
      if (pc.connectionState === "failed") reject(new Error("the connection failed"))
    }
    pc.addEventListener("connectionstatechange", check)
    check()
  })
  return { status: response.status, location, answer: text }
}
window.vanish = (location) => {
  const publisher = publishers.get(location)
  publishers.delete(location)
  publisher.pc.close()
  for (const track of publisher.stream.getTracks()) track.stop()
}
window.unpublish = async (location) => {
  const publisher = publishers.get(location)
  publishers.delete(location)
  const response = await fetch(location, { method: "DELETE", headers: { authorization: "Bearer " + publisher.token } })
  publisher.pc.close()
  for (const track of publisher.stream.getTracks()) track.stop()
  return response.status
}
</script></body></html>`

/** An offer of nothing the recording can carry: PCMU audio and VP9 video. */
const UNSUPPORTED_OFFER = [
  "v=0",
  "o=- 1 1 IN IP4 127.0.0.1",
  "s=-",
  "t=0 0",
  "m=audio 9 UDP/TLS/RTP/SAVPF 0",
  "a=rtpmap:0 PCMU/8000",
  "m=video 9 UDP/TLS/RTP/SAVPF 98",
  "a=rtpmap:98 VP9/90000",
  "",
].join("\r\n")

const FIRST_PUSH_MS = 6_000
const SECOND_PUSH_MS = 5_000

type Published =
  | { readonly status: 201; readonly location: string; readonly answer: string }
  | { readonly status: number; readonly body: { readonly error_code: string; readonly message: string } }

let nats: NatsServerHandle
let nc: NatsConnection
let server: CaptureServer
let browser: Browser
let page: Page
let pageServer: Server
let work: string

beforeAll(async () => {
  nats = await startNatsServer()
  nc = await connect({ servers: nats.url, maxReconnectAttempts: -1 })
  pageServer = createServer((_request, response) => {
    response.setHeader("content-type", "text/html")
    response.end(PUBLISHER_PAGE)
  })
  await new Promise<void>((resolve) => pageServer.listen(0, "127.0.0.1", resolve))
  ;[server, browser] = await Promise.all([
    startCaptureServer(nats.url, {
      env: { CAPTURE_WHIP_ICE_ADDRESSES: "127.0.0.1", CAPTURE_WHIP_GRACE_MS: "4000" },
    }),
    launchChromium([
      "--use-fake-device-for-media-stream",
      "--use-fake-ui-for-media-stream",
      // Chromium leaves loopback out of ICE unless told: the publish stays on 127.0.0.1.
      "--allow-loopback-in-peer-connection",
    ]),
  ])
  page = await browser.newPage()
  await page.goto(`http://127.0.0.1:${(pageServer.address() as AddressInfo).port}/`)
  work = await mkdtemp(join(tmpdir(), "capture-whip-e2e-"))
}, 120_000)
afterAll(async () => {
  await browser?.close()
  pageServer?.close()
  await killIfRunning(server?.process)
  await nc?.close()
  await nats?.stop()
  if (work !== undefined) await rm(work, { recursive: true, force: true })
})

// What the server said, to tell a failure's cause (ICE, ffmpeg, the lease) apart.
beforeEach(() => onTestFailed(() => console.log(server?.process.output().slice(-8_000))))

const startWhipSession = async () => {
  const created = await server.data("POST", "/collection/default/capture/session", { end_user_id: "browser" })
  const session = created.id as string
  const started = await server.data("POST", "/capture/session/start", { session_id: session, source: "whip" })
  return {
    session,
    url: started.whip_url as string,
    token: started.whip_bearer_token as string,
    hls: started.hls_url as string,
  }
}

const publish = (url: string, token: string, videoCodec?: "VP8"): Promise<Published> =>
  page.evaluate(
    ([url, token, videoCodec]) => (window as unknown as WhipPage).publish(url, token, videoCodec),
    [url, token, videoCodec] as const,
  )

/** Publishes, retrying while the previous publish of the same session is still being let go. */
const publishAgain = async (url: string, token: string): Promise<Published> => {
  const deadline = Date.now() + 20_000
  for (;;) {
    const published = await publish(url, token)
    if (published.status !== 409 || Date.now() > deadline) return published
    await sleep(200)
  }
}

interface WhipPage {
  /** `videoCodec`: offer only that one (Chromium offers H.264 and VP8 by default). */
  publish(url: string, token: string, videoCodec?: "VP8"): Promise<Published>
  unpublish(location: string): Promise<number>
  /** Closes the connection without a DELETE, as a closed tab or a lost network does. */
  vanish(location: string): void
}

const whip = (url: string, init: RequestInit) => fetch(url, init)

describe("WHIP publisher (Chromium) → capture serve → exported (real processes)", () => {
  it("refuses what it cannot take, records a browser's publish across a reconnect and exports both streams", async () => {
    const { session, url, token, hls } = await startWhipSession()
    expect(url).toBe(`${server.base}/whip/${session}`)
    expect(token.startsWith(`${session}.`)).toBe(true)
    const media = await MediaStore.open(nc)
    const ofChannel = async (channel: string) =>
      (await media.list(session)).filter((r) => r.channel_id === channel).sort((a, b) => a.index - b.index)

    // CORS preflight: a page on another origin may publish.
    const preflight = await whip(url, { method: "OPTIONS" })
    expect(preflight.status).toBe(204)
    expect(preflight.headers.get("access-control-allow-origin")).toBe("*")
    expect(preflight.headers.get("access-control-expose-headers")).toContain("location")

    // Refusals, each a JSON reason, none storing anything.
    const other = await startWhipSession()
    const refusals: Array<[RequestInit, number, string]> = [
      [{ body: UNSUPPORTED_OFFER, headers: { "content-type": "application/sdp" } }, 401, "unauthorized"],
      [
        {
          body: UNSUPPORTED_OFFER,
          headers: { "content-type": "application/sdp", authorization: `Bearer ${session}.forged` },
        },
        401,
        "unauthorized",
      ],
      [
        {
          body: UNSUPPORTED_OFFER,
          headers: { "content-type": "application/sdp", authorization: `Bearer ${other.token}` },
        },
        403,
        "forbidden",
      ],
      [
        {
          body: UNSUPPORTED_OFFER,
          headers: { "content-type": "text/plain", authorization: `Bearer ${token}` },
        },
        415,
        "unsupported_media_type",
      ],
      [
        {
          body: UNSUPPORTED_OFFER,
          headers: { "content-type": "application/sdp", authorization: `Bearer ${token}` },
        },
        406,
        "unsupported_codec",
      ],
    ]
    for (const [init, status, code] of refusals) {
      const response = await whip(url, { method: "POST", ...init })
      const body = (await response.json()) as { error_code: string }
      expect({ status: response.status, code: body.error_code }).toEqual({ status, code })
    }
    expect(await media.list(session)).toEqual([])
    expect((await server.data("GET", `/collection/default/capture/session/${session}`)).status).toBe(
      "starting",
    )

    // The browser publishes; the session goes active and plays live.
    const first = await publish(url, token)
    if (!("location" in first)) throw new Error(`the publish was refused: ${JSON.stringify(first)}`)
    expect(first.location).toMatch(new RegExp(`/whip/${session}/[0-9a-f-]{36}$`))
    // Every candidate the answer offers is on 127.0.0.1.
    const candidates = first.answer.split("\r\n").filter((line) => line.startsWith("a=candidate:"))
    expect(candidates.length).toBeGreaterThan(0)
    expect(candidates.every((line) => line.split(" ")[4] === "127.0.0.1")).toBe(true)
    // Trickle ICE is not taken (every candidate is in the answer).
    const patched = await whip(first.location, {
      method: "PATCH",
      headers: { "content-type": "application/trickle-ice-sdpfrag", authorization: `Bearer ${token}` },
      body: "a=end-of-candidates\r\n",
    })
    expect(patched.status).toBe(405)
    expect(((await patched.json()) as { error_code: string }).error_code).toBe("method_not_allowed")

    // A second publisher while the first pushes.
    const second = await publish(url, token)
    expect(second.status).toBe(409)
    expect("body" in second && second.body.error_code).toBe("publisher_active")

    await pollUntil(
      "two video segments",
      () => ofChannel("camera:whip"),
      (records) => records.length >= 2,
      { timeoutMs: 60_000 },
    )
    expect((await server.data("GET", `/collection/default/capture/session/${session}`)).status).toBe("active")
    const live = await probe(hls)
    expect(live.streams.map((s) => s.codec_type)).toContain("video")
    await sleep(Math.max(0, FIRST_PUSH_MS - 4_000))

    // The publisher ends its publish and comes back within the grace period: the same session.
    expect(
      await page.evaluate((location) => (window as unknown as WhipPage).unpublish(location), first.location),
    ).toBe(200)
    const again = await publishAgain(url, token)
    if (!("location" in again)) throw new Error(`the publish was refused: ${JSON.stringify(again)}`)
    await sleep(SECOND_PUSH_MS)
    // This time it goes without a word: its connection closing (or its media stopping) ends the publish.
    await page.evaluate((location) => (window as unknown as WhipPage).vanish(location), again.location)

    const { probed, recordedMs, seconds } = await expectPushedExport({
      server,
      media,
      session,
      channels: ["camera:whip", "mic:whip"],
      work,
    })
    expect(probed.streams.map((s) => `${s.codec_type}:${s.codec_name}`).sort()).toEqual([
      "audio:aac",
      "video:h264",
    ])
    expect(seconds).toBeGreaterThan(SECOND_PUSH_MS / 1000 + 3)
    expect(Math.abs(seconds - recordedMs / 1000)).toBeLessThan(2.5)

    // The stopped session's token opens nothing any more; the other session got nothing.
    const late = await publish(url, token)
    expect(late.status).toBe(409)
    expect("body" in late && late.body.error_code).toBe("session_ended")
    expect(await media.list(other.session)).toEqual([])
  }, 300_000)

  it("takes a VP8-only publisher, its video encoded to the H.264 the segments carry", async () => {
    const { session, url, token, hls } = await startWhipSession()
    const published = await publish(url, token, "VP8")
    if (!("location" in published)) throw new Error(`the publish was refused: ${JSON.stringify(published)}`)
    expect(published.answer).toMatch(/a=rtpmap:\d+ VP8\/90000/)
    expect(published.answer).not.toMatch(/H264/)
    const media = await MediaStore.open(nc)
    await pollUntil(
      "two video segments and an audio one",
      () => media.list(session),
      (records) =>
        records.filter((r) => r.channel_id === "camera:whip").length >= 2 &&
        records.some((r) => r.channel_id === "mic:whip"),
      { timeoutMs: 60_000 },
    )
    const live = await probe(hls)
    expect(live.streams.map((s) => `${s.codec_type}:${s.codec_name}`)).toContain("video:h264")
    expect(
      await page.evaluate(
        (location) => (window as unknown as WhipPage).unpublish(location),
        published.location,
      ),
    ).toBe(200)
  }, 120_000)
})
