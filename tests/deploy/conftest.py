"""Fixtures of the deploy tests (helpers live in ``_support``)."""

from __future__ import annotations

import pytest

from tests.deploy._support import KUSTOMIZATIONS, Doc, render


@pytest.fixture(params=KUSTOMIZATIONS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[Doc]]:
    return request.param, render(request.param)
