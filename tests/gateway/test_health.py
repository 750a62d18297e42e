"""Active health checks against real loopback servers."""

from __future__ import annotations

import asyncio

from gateway._health import check_replica
from gateway._state import GatewayState
from tests.fakes.openai_upstream import FakeUpstream, free_port
from tests.gateway.conftest import make_config


def _run_checks(url: str, rounds: int, threshold: int = 3) -> list[bool]:
    async def run() -> list[bool]:
        st = GatewayState.from_config(make_config([url], health={"failure_threshold": threshold}))
        st.open_session()
        try:
            replica = st.pools["chat"].replicas[0]
            return [await check_replica(st, replica) for _ in range(rounds)]
        finally:
            await st.session.close()

    return asyncio.run(run())


def test_failing_health_marks_down_only_after_threshold() -> None:
    up = FakeUpstream(healthy=False).start()
    try:
        # A busy engine may answer /health late or badly once; three in a row take it out.
        assert _run_checks(up.url, 4) == [True, True, False, False]
    finally:
        up.stop()


def test_refused_connection_marks_down_at_once() -> None:
    assert _run_checks(f"http://127.0.0.1:{free_port()}", 1) == [False]


def test_recovers_on_first_good_check() -> None:
    up = FakeUpstream(healthy=False).start()
    try:

        async def run() -> list[bool]:
            st = GatewayState.from_config(make_config([up.url], health={"failure_threshold": 1}))
            st.open_session()
            try:
                r = st.pools["chat"].replicas[0]
                first = await check_replica(st, r)
                up.healthy = True
                return [first, await check_replica(st, r)]
            finally:
                await st.session.close()

        assert asyncio.run(run()) == [False, True]
    finally:
        up.stop()
