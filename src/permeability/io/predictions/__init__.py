"""The prediction log: spool, buffered rows, Delta commits, replay after a crash, maintenance."""
