"""A physically grounded synthetic lab export, the stand-in for the lab's confidential data."""
