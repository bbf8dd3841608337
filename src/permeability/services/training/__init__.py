"""The training service (port 8000): train, versions, promotion, on-demand evaluation."""
