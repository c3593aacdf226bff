/**
 * A WHIP publisher for benchmarks: ffmpeg sends a pre-encoded H.264 + Opus file as plain RTP
 * (`-re`, stream copy) to two UDP sockets of this process, and werift (a WebRTC stack beside the
 * server's own) publishes those packets to a WHIP URL. Its CPU is this process's, not the
 * server's.
 */
import { spawn } from "node:child_process"
import { createSocket } from "node:dgram"
import { MediaStreamTrack, RTCPeerConnection, useH264, useOPUS } from "werift"

/** Sends `file` (H.264 + Opus) in real time as RTP to 127.0.0.1 ports; `sdpFile` describes it. */
const rtpSource = (
  ffmpeg: string,
  file: string,
  ports: { readonly video: number; readonly audio: number },
  sdpFile: string,
) =>
  new Promise<{ readonly code: number | null; readonly stderr: string }>((resolve) => {
    const child = spawn(ffmpeg, [
      ...["-hide_banner", "-loglevel", "error", "-re", "-i", file],
      ...["-map", "0:v", "-c", "copy", "-payload_type", "96", "-f", "rtp", `rtp://127.0.0.1:${ports.video}`],
      ...["-map", "0:a", "-c", "copy", "-payload_type", "111", "-f", "rtp", `rtp://127.0.0.1:${ports.audio}`],
      ...["-sdp_file", sdpFile],
    ])
    let stderr = ""
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString()
    })
    child.on("close", (code) => resolve({ code, stderr }))
  })

const boundSocket = async () => {
  const socket = createSocket("udp4")
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve))
  return socket
}

/** A werift publisher connected to `url` over WHIP: its tracks and resource, or undefined when ICE failed or the offer was refused for now. */
const connect = async (url: string, token: string) => {
  const pc = new RTCPeerConnection({
    iceServers: [],
    iceUseIpv6: false,
    iceAdditionalHostAddresses: ["127.0.0.1"],
    codecs: { video: [useH264()], audio: [useOPUS()] },
  })
  const video = new MediaStreamTrack({ kind: "video" })
  const audio = new MediaStreamTrack({ kind: "audio" })
  pc.addTransceiver(video, { direction: "sendonly" })
  pc.addTransceiver(audio, { direction: "sendonly" })
  await pc.setLocalDescription(await pc.createOffer())
  await new Promise<void>((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve()
    pc.iceGatheringStateChange.subscribe((state) => state === "complete" && resolve())
  })
  const offer = (pc.localDescription?.sdp ?? "")
    .split("\r\n")
    .filter((line) => !line.startsWith("a=candidate:") || line.split(" ")[4] === "127.0.0.1")
    .join("\r\n")
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/sdp", authorization: `Bearer ${token}` },
    body: offer,
  })
  // The previous attempt's publish is still being let go.
  if (response.status === 409) {
    await pc.close()
    return undefined
  }
  if (response.status !== 201) throw new Error(`WHIP answered ${response.status}: ${await response.text()}`)
  const location = new URL(response.headers.get("location") ?? "", url).href
  await pc.setRemoteDescription({ type: "answer", sdp: await response.text() })
  const connected = await new Promise<boolean>((resolve) => {
    pc.connectionStateChange.subscribe((state) => {
      if (state === "connected") resolve(true)
      if (state === "failed") resolve(false)
    })
    if (pc.connectionState === "connected") resolve(true)
  })
  if (!connected) {
    await pc.close()
    return undefined
  }
  return { pc, video, audio, location }
}

/**
 * Publishes `file` over WHIP to `url` with `token`, in real time; resolves once it has all been
 * sent and the resource deleted. werift to werift on loopback sometimes fails its ICE checks at
 * once: it publishes again then (within the session's grace period).
 */
export const publishWhip = async (
  ffmpeg: string,
  file: string,
  url: string,
  token: string,
  sdpFile: string,
) => {
  let publisher: Awaited<ReturnType<typeof connect>>
  for (let attempt = 0; publisher === undefined; attempt++) {
    if (attempt >= 20) throw new Error("the WHIP publish did not connect")
    publisher = await connect(url, token)
    if (publisher === undefined) await new Promise((resolve) => setTimeout(resolve, 200))
  }
  const { pc, video, audio, location } = publisher
  const [videoIn, audioIn] = await Promise.all([boundSocket(), boundSocket()])
  videoIn.on("message", (packet) => video.writeRtp(packet))
  audioIn.on("message", (packet) => audio.writeRtp(packet))
  try {
    const sent = await rtpSource(
      ffmpeg,
      file,
      { video: videoIn.address().port, audio: audioIn.address().port },
      sdpFile,
    )
    if (sent.code !== 0) throw new Error(`the RTP source exited with ${sent.code}: ${sent.stderr}`)
    const deleted = await fetch(location, { method: "DELETE", headers: { authorization: `Bearer ${token}` } })
    if (deleted.status !== 200) throw new Error(`DELETE answered ${deleted.status}`)
  } finally {
    videoIn.close()
    audioIn.close()
    await pc.close()
  }
}
