"""Docker plugin of the GNS3 API v1 server: containers as nodes, linked by veth pairs and the core's data plane."""

__version__ = "0.1.0"
