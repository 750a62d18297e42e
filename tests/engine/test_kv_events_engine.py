"""vLLM's KV-cache events on the CPU engine: with ``--kv-events-config`` the engine publishes
``BlockStored`` events over ZMQ, with the block hashes, the parent hash and the token ids of
every prompt block it caches. This is the feed a precise prefix scorer would subscribe to; the
test pins what the engine emits (docs/routing.md says why the gateway routes on its own index).

The subscriber runs in the engine's own venv, which has pyzmq and msgspec (vLLM's event types
are msgspec structs)."""

from __future__ import annotations

import asyncio
import json
import socket

import httpx
import pytest

from engine import EngineManager, engine_python
from tests.engine.conftest import MODEL, engine_spec, require_prepared_engine

pytestmark = pytest.mark.engine

_SUBSCRIBER = r"""
import json, sys, time
import msgspec, zmq
from vllm.distributed.kv_events import BlockStored, KVEventBatch

sock = zmq.Context().socket(zmq.SUB)
sock.connect(sys.argv[1])
sock.setsockopt(zmq.SUBSCRIBE, b"")
print("subscribed", flush=True)
decode = msgspec.msgpack.Decoder(type=KVEventBatch).decode
poller = zmq.Poller()
poller.register(sock, zmq.POLLIN)
deadline = time.time() + float(sys.argv[2])
stored = []
while time.time() < deadline and not stored:
    if poller.poll(200):
        for ev in decode(sock.recv_multipart()[-1]).events:
            if isinstance(ev, BlockStored):
                stored.append({"hashes": len(ev.block_hashes), "tokens": len(ev.token_ids),
                               "block_size": ev.block_size})
print(json.dumps(stored), flush=True)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_cpu_engine_publishes_block_stored_events() -> None:
    require_prepared_engine()
    port = _free_port()
    # A wildcard address makes vLLM bind its PUB socket; a host address makes it connect.
    config = {"enable_kv_cache_events": True, "publisher": "zmq",
              "endpoint": f"tcp://*:{port}"}  # fmt: skip
    spec = engine_spec(extra_args=["--enable-prefix-caching", "--kv-events-config",
                                   json.dumps(config)])  # fmt: skip
    python = engine_python(spec)
    system = "You answer questions about the gateway's routing, briefly and exactly. " * 30

    async def run() -> list[dict[str, int]]:
        async with EngineManager("kv-events", MODEL, spec, progress=False) as manager:
            url = await manager.wait_ready()
            sub = await asyncio.create_subprocess_exec(
                str(python), "-c", _SUBSCRIBER, f"tcp://127.0.0.1:{port}", "120",
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            try:
                assert sub.stdout is not None
                assert (await sub.stdout.readline()).strip() == b"subscribed"
                await asyncio.sleep(1.0)  # ZMQ's slow joiner: let the subscription land
                async with httpx.AsyncClient(timeout=300) as client:
                    resp = await client.post(f"{url}/v1/chat/completions", json={
                        "model": MODEL, "max_tokens": 2, "temperature": 0,
                        "messages": [{"role": "system", "content": system},
                                     {"role": "user", "content": "What is a replica?"}],
                    })  # fmt: skip
                    assert resp.status_code == 200, resp.text
                out, _ = await asyncio.wait_for(sub.communicate(), 180)
            finally:
                if sub.returncode is None:
                    sub.kill()
                    await sub.wait()
            return list(json.loads(out.decode().strip().splitlines()[-1]))

    stored = asyncio.run(run())
    print(f"\nBlockStored events: {stored}")
    assert stored, "the engine published no BlockStored event"
    first = stored[0]
    # A prompt of ~700 tokens fills whole blocks; each block's token ids come with its hash.
    assert first["hashes"] >= 1
    assert first["tokens"] == first["hashes"] * first["block_size"]
