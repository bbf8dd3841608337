"""The inference service (port 8001): guide values, intervals, decisions, the lab page."""
