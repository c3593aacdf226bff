import { describe, expect, it } from "vitest"
import { matchEvent, termsOf } from "../src/index.js"

describe("the deterministic alert matcher", () => {
  it("takes terms from the label and prompt, without common words", () => {
    expect(termsOf("Alert when the user mentions the quarterly budget")).toEqual(["quarterly", "budget"])
  })

  it("fires when every label term is found, or half of all terms", () => {
    expect(
      matchEvent('Screen shows "Quarterly budget review"', "budget review", "when the budget is on screen")
        .fires,
    ).toBe(true)
    // Plurals and longer forms match their term.
    expect(matchEvent("we reviewed the budgets", "budget", "budget talk").fires).toBe(true)
    const none = matchEvent(
      "Invoice overdue reminder",
      "budget review",
      "when the quarterly budget is on screen",
    )
    expect(none).toMatchObject({ fires: false, confidence: 0 })
    // One term of four, and not all of the label's: no.
    expect(matchEvent("a review of the slides", "budget review", "quarterly budget numbers").fires).toBe(
      false,
    )
  })

  it("gives the share of terms found as the confidence, and says which", () => {
    const match = matchEvent("budget review for the team", "budget review", "quarterly budget")
    expect(match.confidence).toBeCloseTo(2 / 3, 2)
    expect(match.explanation).toContain('"budget"')
  })
})
