"""Test set-up: jnerf prepares Jittor before any test imports it, and tests run on the CPU unless they ask."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import jnerf  # noqa: E402,F401


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a test of minutes (a training run); CI still runs it")
