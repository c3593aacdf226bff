/**
 * Free TCP ports on the loopback interface, for servers a test starts itself. The kernel picks them
 * (listen on port 0), so parallel suites rarely collide; a port is only reserved while probing, so a caller
 * that loses a race sees "address already in use" on bind and should pick again.
 */
import { createServer, type Server } from "node:net"

/** The only address the testkit binds or connects to. */
export const LOOPBACK = "127.0.0.1"

/** One free TCP port on 127.0.0.1. */
export const getFreePort = async (): Promise<number> => {
  const [port] = await getFreePorts(1)
  if (port === undefined) throw new Error("no free port")
  return port
}

/** `count` distinct free TCP ports on 127.0.0.1 (all held open together while probing, so distinct). */
export const getFreePorts = async (count: number): Promise<number[]> => {
  const servers: Server[] = []
  try {
    const ports: number[] = []
    for (let i = 0; i < count; i++) {
      const server = createServer()
      servers.push(server)
      ports.push(await listen(server))
    }
    return ports
  } finally {
    await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))))
  }
}

const listen = (server: Server): Promise<number> =>
  new Promise((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, LOOPBACK, () => {
      const address = server.address()
      if (address === null || typeof address === "string") reject(new Error("unexpected server address"))
      else resolve(address.port)
    })
  })
