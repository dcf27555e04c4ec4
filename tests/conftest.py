"""Shared test helpers: oracle imports that may not skip in CI, and Hypothesis profiles."""
import importlib
import os

import pytest
from hypothesis import HealthCheck, settings

# `ci` keeps the property suite within a few minutes on 2 cores; `thorough` digs deeper.
settings.register_profile("ci", max_examples=25, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=500, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=10, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

REQUIRE_REFERENCE = os.environ.get("MINIGRAD_REQUIRE_REFERENCE", "") not in ("", "0")


def require(module_name, extra="reference"):
    """Import an oracle or optional module (torch, tiktoken, mpi4py ...) or skip the test.

    Under MINIGRAD_REQUIRE_REFERENCE=1 (as in CI) a missing oracle fails the
    test instead, so no reference test is ever silently skipped.
    """
    try:
        return importlib.import_module(module_name)
    except ImportError as e:
        if REQUIRE_REFERENCE:
            pytest.fail(f"oracle {module_name!r} is required (MINIGRAD_REQUIRE_REFERENCE=1) "
                        f"but cannot be imported: {e}")
        pytest.skip(f"{module_name!r} not installed (pip install -e '.[{extra}]')")


SHAKESPEARE = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "tinyshakespeare.txt")


def shakespeare_path():
    """Path of the tiny Shakespeare corpus; skip when absent, except under CI."""
    path = os.path.abspath(SHAKESPEARE)
    if not os.path.exists(path):
        if os.environ.get("CI") or REQUIRE_REFERENCE:
            pytest.fail(f"corpus missing: {path}")
        pytest.skip(f"corpus not found at {path}")
    return path
