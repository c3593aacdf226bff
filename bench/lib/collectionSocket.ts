/** The collection's WebSocket, opened as a browser would, for benches that time lifecycle events. */
import { DEFAULT_COLLECTION } from "@capture/protocol"
import { WebSocket } from "ws"
import { accepted, type JsonClient, stringField } from "./jsonClient.js"

/**
 * Opens the socket and resolves once its first message names the connection. Every later message
 * goes to `onMessage` with the time it arrived; the handler is attached as the first message is
 * read, so none slips between the two. A socket that fails later loses events: they show up as
 * missing rather than stopping the run.
 */
export const openCollectionSocket = async (
  client: JsonClient,
  onMessage: (message: Record<string, unknown>, at: number) => void,
): Promise<{ readonly socket: WebSocket; readonly connectionId: string }> => {
  const url = stringField(
    accepted("websocket url", await client.send("GET", `/collection/${DEFAULT_COLLECTION}/websocket`)),
    "websocket_url",
  )
  const socket = new WebSocket(url)
  const connectionId = await new Promise<string>((resolve, reject) => {
    socket.once("error", reject)
    socket.once("message", (data) => {
      const first = JSON.parse(String(data)) as { connection_id?: unknown }
      if (typeof first.connection_id !== "string") {
        reject(new Error(`unexpected first message: ${data}`))
        return
      }
      socket.off("error", reject)
      socket.on("error", (error) => console.error(`websocket: ${error.message}`))
      socket.on("message", (message) =>
        onMessage(JSON.parse(String(message)) as Record<string, unknown>, performance.now()),
      )
      resolve(first.connection_id)
    })
  })
  return { socket, connectionId }
}
