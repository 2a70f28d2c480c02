"""GNS3 API v1 VMware plugin: Workstation and Player VMs driven through vmrun and their VMX files."""

__version__ = "0.1.0"
