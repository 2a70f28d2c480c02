"""Dynamips plugin: routers and switch devices driven through the dynamips hypervisor, plus a built-in switch."""
