"""Shared fixtures. Reference data are found through one helper,
:func:`equilens.data.reference.reference_path` ($EQUILENS_DATA, else
../shared/data); tests that need them skip with the reason when absent."""

from __future__ import annotations

import pytest

from equilens.data.reference import reference_path
from equilens.errors import DatasetNotFoundError


@pytest.fixture(scope="session")
def reference():
    """``reference(name)`` -> local path of a reference dataset, or skip."""

    def locate(name: str):
        try:
            return reference_path(name)
        except DatasetNotFoundError as error:
            pytest.skip(f"reference data not available: {error}")

    return locate
