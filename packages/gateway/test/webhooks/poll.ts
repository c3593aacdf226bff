export { waitFor } from "@capture/testkit"
