"""The suite runs once per backend: the Makefile runs pytest with
MICROBP_BACKEND=python and again with MICROBP_BACKEND=c. With
MICROBP_REQUIRE_C=1 (set by `make test`) a missing C core, or a missing
microbp._pyread (the C that reads lists of rows), fails the run instead of
quietly testing only Python."""
import os
import sysconfig

import pytest

import microbp


def pytest_report_header(config):
    err = microbp.backend.c_import_error()
    return (f"microbp backend: {microbp.get_backend()} "
            f"(available: {', '.join(microbp.available_backends())}"
            f"{'' if err is None else '; C core not built: ' + str(err)})")


def pytest_sessionstart(session):
    if os.environ.get("MICROBP_REQUIRE_C") == "1" and "c" not in microbp.available_backends():
        raise pytest.UsageError(
            f"MICROBP_REQUIRE_C=1 but the C core is not built: {microbp.backend.c_import_error()}")
    if (os.environ.get("MICROBP_REQUIRE_C") == "1" and microbp.tape.rows_to_doubles is None
            and not sysconfig.get_config_var("Py_GIL_DISABLED")):     # not built there
        raise pytest.UsageError("MICROBP_REQUIRE_C=1 but microbp._pyread is not built")


@pytest.fixture
def backend():
    """The backend this run of the suite tests ("c" or "python")."""
    return microbp.get_backend()


@pytest.fixture
def both_backends():
    """The backends to compare against each other (skips where C is not built)."""
    if "c" not in microbp.available_backends():
        pytest.skip("the C core is not built")
    return ["python", "c"]
