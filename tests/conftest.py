"""Test set-up: jnerf prepares Jittor before any test imports it, and tests run on the CPU unless they ask."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import jnerf  # noqa: E402,F401
import pytest  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: minutes of CPU beyond CI's end-to-end runs; set JNERF_SLOW=1 to run")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("JNERF_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: set JNERF_SLOW=1 to run it")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
