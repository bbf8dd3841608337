"""Figures people would rather look at than read (matplotlib, Agg canvas, no pyplot state)."""
