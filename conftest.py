"""Test set-up: eight fake CPU devices, so multi-device code paths run on any machine."""
import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
