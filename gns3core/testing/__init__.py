"""Test support shipped with the core: fixtures (a pytest plugin) and the conformance kit for emulator plugins."""
