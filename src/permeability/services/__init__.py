"""HTTP services: training (port 8000) and inference (port 8001), and what both share."""
