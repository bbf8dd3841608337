"""Guide values to decisions: specification limits, P(exceed), approve/retest/reject, batch scoring."""
