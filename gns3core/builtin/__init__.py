"""The core's own API features, each registered through the same hook as an outside plugin."""
