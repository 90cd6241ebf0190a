"""Server memory with many idle authenticated WebSockets (aim: 10,000 sockets under 400 MiB RSS).

Creates a fresh PostgreSQL database with live sessions and single-use tickets (five sockets per
person, the per-user cap), starts the real server (``python -m server.cli serve``), opens the
sockets from this process (auth phase included; ``--subscribe`` also subscribes each one to its
consultation), and prints the server's RSS (``/proc/<pid>/status`` VmRSS) before and after.

    python -m bench.ws_idle_memory --database-url postgresql://postgres@127.0.0.1:5432/test \\
        --redis-url redis://127.0.0.1:6379/0 --sockets 10000

127.0.0.1 only; the database, Redis keys and the server process are removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

from bench.chat_bench import (
    Process,
    create_database,
    drop_database,
    open_authenticated,
    raise_fd_limit,
    seed,
    server_env,
)

PER_PERSON = 5


async def main() -> None:
    """Open the sockets, measure, clean up."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sockets", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=100, help="sockets being opened at once")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds to wait before measuring")
    parser.add_argument("--subscribe", action="store_true", help="also subscribe each socket to its consultation")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--redis-url", default="")
    args = parser.parse_args()
    raise_fd_limit()
    people = -(-args.sockets // PER_PERSON)
    database_url = await create_database(args.database_url)
    prefix = f"telemed-bench-{uuid.uuid4().hex[:8]}"
    server: Process | None = None
    sockets: list[aiohttp.ClientWebSocketResponse] = []
    try:
        pairs, patient_tickets = await seed(database_url, people, tickets_per_subject=PER_PERSON)
        work = [
            (pair.consultation_id, ticket)
            for pair, tickets in zip(pairs, patient_tickets, strict=True)
            for ticket in tickets
        ][: args.sockets]
        with tempfile.TemporaryDirectory() as workdir:
            server = Process(
                ["server.cli", "serve", "--skip-migrations"],
                server_env(database_url, args.redis_url, str(Path(workdir) / "data"), prefix),
            )
            await server.wait_ready()
            await asyncio.sleep(1.0)
            before = server.rss_mib()
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector) as session:
                semaphore = asyncio.Semaphore(args.concurrency)
                started = time.perf_counter()

                async def open_one(consultation_id: int, ticket: str) -> None:
                    async with semaphore:
                        ws = await open_authenticated(session, server.url, ticket)  # type: ignore[union-attr]
                        if args.subscribe:
                            await ws.send_str(
                                json.dumps(
                                    {"id": 1, "type": "consultation.subscribe", "consultation_id": consultation_id}
                                )
                            )
                            reply = json.loads((await ws.receive(timeout=60)).data)
                            if not reply.get("success"):
                                raise RuntimeError(f"subscribe failed: {reply}")
                        sockets.append(ws)
                        if len(sockets) % 1000 == 0:
                            print(f"  {len(sockets)} sockets open", file=sys.stderr, flush=True)

                await asyncio.gather(*(open_one(cid, ticket) for cid, ticket in work))
                opened_in = time.perf_counter() - started
                await asyncio.sleep(args.settle)
                after = server.rss_mib()
                alive = sum(1 for ws in sockets if not ws.closed)
                print()
                print(f"sockets open (authenticated{', subscribed' if args.subscribe else ''}): {alive}")
                print(f"opened in {opened_in:.1f} s ({len(sockets) / opened_in:.0f}/s)")
                print(f"server RSS before: {before:8.1f} MiB")
                print(f"server RSS after:  {after:8.1f} MiB")
                print(f"per socket:        {(after - before) * 1024 / max(1, alive):8.1f} KiB")
                print(f"aim: under 400 MiB with 10,000 sockets -> {'met' if after < 400 else 'NOT met'}")
                await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    finally:
        if server is not None:
            server.stop()
        with contextlib.suppress(Exception):
            await drop_database(database_url)
        if args.redis_url:
            import redis.asyncio as redis_asyncio

            client = redis_asyncio.Redis.from_url(args.redis_url)
            keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
            if keys:
                await client.delete(*keys)
            await client.aclose()


if __name__ == "__main__":
    asyncio.run(main())
