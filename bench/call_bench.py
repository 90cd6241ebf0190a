"""Call signalling benchmark: relay latency at N concurrent calls, and join-to-connected with real aiortc media.

    python -m bench.call_bench --database-url postgresql://postgres@127.0.0.1:5432/test \
        --redis-url redis://127.0.0.1:6379/0 --calls 10,100,500 --media-calls 1,10

1. **Relay latency** (signalling-only peers): N calls, each a patient and a doctor socket that
   joined the call; the patient sends ``call.offer`` (a real aiortc SDP), the doctor receives it
   as ``call.description`` and sends ``call.answer``, which the patient receives; every hop's
   latency (send -> receipt at the other side) is one sample. All calls run at once.
2. **Join to connected** (real aiortc media on loopback): the doctor has joined; the time from
   the patient's ``call.join`` to both peer connections being ``connected``; M calls at once.

Both run against the real server (``telemed serve`` on a fresh PostgreSQL database: every join
authorized and recorded, every message validated and relayed through the bus) and, in the same
run, against ``bench/bare_call_relay.py`` (an aiohttp relay with no auth, validation or bus).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection

from bench.chat_bench import (
    ORIGIN,
    Pair,
    Process,
    create_database,
    drop_database,
    percentile,
    raise_fd_limit,
    seed,
    server_env,
)
from signaling.peers.client import CallPeer, SocketClient
from signaling.peers.media import PatternVideoTrack, silence
from signaling.peers.net import pin_host_addresses


async def real_sdp() -> tuple[str, str]:
    """An aiortc offer and answer with audio and video (about what a browser sends)."""
    offerer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    answerer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    for pc in (offerer, answerer):
        pc.addTrack(silence())
        pc.addTrack(PatternVideoTrack())
    await offerer.setLocalDescription(await offerer.createOffer())
    await answerer.setRemoteDescription(offerer.localDescription)
    await answerer.setLocalDescription(await answerer.createAnswer())
    offer, answer = offerer.localDescription.sdp, answerer.localDescription.sdp
    await offerer.close()
    await answerer.close()
    return offer, answer


async def _open_all(session: aiohttp.ClientSession, url: str, tickets: list[str]) -> list[SocketClient]:
    sockets: list[SocketClient] = []
    for start in range(0, len(tickets), 50):
        chunk = tickets[start : start + 50]
        sockets += await asyncio.gather(*(SocketClient.open(session, url, ticket, origin=ORIGIN) for ticket in chunk))
    return sockets


async def relay_latency(
    patient_url: str,
    doctor_url: str,
    pairs: list[Pair],
    round_trips: int,
    offer: str,
    answer: str,
    before_start: Callable[[], Awaitable[None]] | None = None,
) -> list[float]:
    """Latency samples (ms) of every relayed description, all calls at once (after ``before_start``)."""
    samples: list[float] = []
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        patients = await _open_all(session, patient_url, [pair.patient_ticket or uuid.uuid4().hex for pair in pairs])
        doctors = await _open_all(session, doctor_url, [pair.doctor_ticket or uuid.uuid4().hex for pair in pairs])
        try:
            joining = asyncio.Semaphore(20)  # joins are transactions; the relay is what is measured

            async def join_call(
                pair: Pair, patient: SocketClient, doctor: SocketClient
            ) -> tuple[int, SocketClient, SocketClient, asyncio.Queue[dict[str, Any]], asyncio.Queue[dict[str, Any]]]:
                to_doctor: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
                to_patient: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
                async with joining:
                    joined = await doctor.request(
                        "call.join", on_event=to_doctor.put_nowait, consultation_id=pair.consultation_id
                    )
                    await patient.request(
                        "call.join", on_event=to_patient.put_nowait, consultation_id=pair.consultation_id
                    )
                while (await to_doctor.get()).get("type") != "call.peer_joined":
                    pass
                while not to_patient.empty():
                    to_patient.get_nowait()
                return joined["call_id"], patient, doctor, to_doctor, to_patient

            calls = await asyncio.gather(*(join_call(*entry) for entry in zip(pairs, patients, doctors, strict=True)))
            if before_start is not None:
                await before_start()  # every client process has joined its calls: start together

            async def one_call(
                call_id: int,
                patient: SocketClient,
                doctor: SocketClient,
                to_doctor: asyncio.Queue[dict[str, Any]],
                to_patient: asyncio.Queue[dict[str, Any]],
            ) -> None:
                for _ in range(round_trips):
                    for sender, queue, kind, sdp in (
                        (patient, to_doctor, "call.offer", offer),
                        (doctor, to_patient, "call.answer", answer),
                    ):
                        started = time.perf_counter()
                        acknowledged = asyncio.ensure_future(sender.request(kind, call_id=call_id, sdp=sdp))
                        while (await queue.get()).get("type") != "call.description":
                            pass
                        samples.append((time.perf_counter() - started) * 1000)
                        await acknowledged

            await asyncio.gather(*(one_call(*call) for call in calls))

            async def hang_up(call_id: int, doctor: SocketClient) -> None:
                async with joining:  # end them as people do, not 2N dropped sockets waiting out their grace
                    await doctor.request("call.hangup", call_id=call_id)

            await asyncio.gather(*(hang_up(call[0], call[2]) for call in calls))
        finally:
            await asyncio.gather(*(socket.close() for socket in patients + doctors))
    return samples


async def join_to_connected(
    patient_url: str,
    doctor_url: str,
    pairs: list[Pair],
    before_start: Callable[[], Awaitable[None]] | None = None,
) -> list[float]:
    """Join-to-connected samples (ms) with real aiortc media, the first pair being a warm-up."""
    samples: list[float] = []
    async with aiohttp.ClientSession() as session:
        patients = await _open_all(session, patient_url, [pair.patient_ticket or uuid.uuid4().hex for pair in pairs])
        doctors = await _open_all(session, doctor_url, [pair.doctor_ticket or uuid.uuid4().hex for pair in pairs])
        peers: list[CallPeer] = []
        try:

            async def one_call(pair: Pair, patient: SocketClient, doctor: SocketClient) -> float:
                doctor_peer = CallPeer(doctor, pair.consultation_id)
                patient_peer = CallPeer(patient, pair.consultation_id)
                peers.extend((doctor_peer, patient_peer))
                await doctor_peer.join()
                started = time.perf_counter()
                await patient_peer.join()
                await asyncio.wait_for(asyncio.gather(patient_peer.connected.wait(), doctor_peer.connected.wait()), 90)
                return (max(patient_peer.connected_at, doctor_peer.connected_at) - started) * 1000

            entries = list(zip(pairs, patients, doctors, strict=True))
            await one_call(*entries[0])  # warm-up: codecs and the first DTLS context
            if before_start is not None:
                await before_start()
            samples = list(await asyncio.gather(*(one_call(*entry) for entry in entries[1:])))
        finally:
            await asyncio.gather(*(peer.close() for peer in peers), return_exceptions=True)
            await asyncio.gather(*(socket.close() for socket in patients + doctors))
    return samples


def _client_process(kind: str, args: tuple[Any, ...], results: Any, ready: Any, go: Any) -> None:
    """One load-generator process: its share of the calls, started together with the others."""
    raise_fd_limit()
    pin_host_addresses(["127.0.0.1"])

    async def barrier() -> None:
        ready.put(True)
        await asyncio.to_thread(go.wait)

    async def run() -> list[float]:
        if kind == "relay":
            patient_url, doctor_url, pairs, round_trips, offer, answer = args
            return await relay_latency(patient_url, doctor_url, pairs, round_trips, offer, answer, barrier)
        patient_url, doctor_url, pairs = args
        return await join_to_connected(patient_url, doctor_url, pairs, barrier)

    results.put(asyncio.run(run()))


async def in_client_processes(kind: str, slices: list[tuple[Any, ...]]) -> list[float]:
    """Run a phase in separate load-generator processes, so the server (and the bare relay) get a core
    of their own instead of sharing one event loop's time with 2N client sockets or aiortc peers."""
    context = multiprocessing.get_context("spawn")
    results, ready, go = context.Queue(), context.Queue(), context.Event()
    workers = [context.Process(target=_client_process, args=(kind, args, results, ready, go)) for args in slices]
    for worker in workers:
        worker.start()
    try:
        for _ in workers:
            await asyncio.to_thread(ready.get, True, 600)
        go.set()
        samples: list[float] = []
        for _ in workers:
            samples += await asyncio.to_thread(results.get, True, 900)
        return samples
    finally:
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()


def _split(pairs: list[Pair], processes: int) -> list[list[Pair]]:
    return [chunk for chunk in (pairs[index::processes] for index in range(processes)) if chunk]


def _progress(rows: list[tuple[str, int, str, list[float]]]) -> None:
    for measure, count, system, samples in rows:
        print(
            f"{measure} {count} {system}: p50 {percentile(samples, 0.5):.2f} p99 {percentile(samples, 0.99):.2f} ms",
            file=sys.stderr,
            flush=True,
        )


def _fake(pairs: list[Pair]) -> list[Pair]:
    return [Pair(pair.consultation_id, "", "") for pair in pairs]


async def main() -> None:
    """Run both phases against both systems and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", default="10,100,500", help="concurrent calls for the relay latency")
    parser.add_argument("--round-trips", type=int, default=10, help="offer/answer round trips per call")
    parser.add_argument("--media-calls", default="1,10", help="concurrent aiortc calls for join-to-connected")
    parser.add_argument("--processes", type=int, default=1, choices=[1, 2], help="server processes (2: patient on A)")
    parser.add_argument("--database-url", required=True, help="PostgreSQL server URL (a bench database is created)")
    parser.add_argument("--redis-url", default="", help="Redis URL (required with --processes 2)")
    parser.add_argument(
        "--client-processes",
        type=int,
        default=1,
        help="load-generator processes (calls split between them; each media process warms up once)",
    )
    args = parser.parse_args()
    if args.processes > 1 and not args.redis_url:
        parser.error("--processes 2 needs --redis-url")
    raise_fd_limit()
    pin_host_addresses(["127.0.0.1"])
    calls = [int(part) for part in args.calls.split(",") if part.strip()]
    media_calls = [int(part) for part in args.media_calls.split(",") if part.strip()]
    offer, answer = await real_sdp()
    rows: list[tuple[str, int, str, list[float]]] = []
    database_url = await create_database(args.database_url)
    prefix = f"telemed-bench-{uuid.uuid4().hex[:8]}"
    bare = Process(["bench.bare_call_relay"])
    servers: list[Process] = []
    try:
        with tempfile.TemporaryDirectory() as workdir:
            env = {
                **server_env(database_url, args.redis_url, str(Path(workdir) / "data"), prefix),
                "TELEMED_RTC_HOST_ADDRESSES": "127.0.0.1",
            }
            serve = ["server.cli", "serve", "--skip-migrations"]
            servers = [Process(serve, env) for _ in range(args.processes)]
            await asyncio.gather(bare.wait_ready(), *(server.wait_ready() for server in servers))
            patient_url, doctor_url = servers[0].url, servers[-1].url
            spare = sum(count + min(max(1, args.client_processes), count) for count in media_calls)
            everyone, _ = await seed(database_url, sum(calls) + spare)
            taken = 0

            def take(count: int) -> list[Pair]:
                nonlocal taken
                taken += count
                return everyone[taken - count : taken]

            clients = max(1, args.client_processes)
            for count in calls:
                pairs = take(count)
                for system, (p_url, d_url), share in (
                    ("telemed", (patient_url, doctor_url), pairs),
                    ("bare relay", (bare.url, bare.url), _fake(pairs)),
                ):
                    slices: list[tuple[Any, ...]] = [
                        (p_url, d_url, chunk, args.round_trips, offer, answer) for chunk in _split(share, clients)
                    ]
                    rows.append(("relay", count, system, await in_client_processes("relay", slices)))
                _progress(rows[-2:])
            for count in media_calls:
                media_clients = min(clients, count)
                pairs = take(count + media_clients)  # one warm-up call per client process
                fake = [Pair(100_000 + pair.consultation_id, "", "") for pair in pairs]
                for system, (p_url, d_url), share in (
                    ("telemed", (patient_url, doctor_url), pairs),
                    ("bare relay", (bare.url, bare.url), fake),
                ):
                    media_slices: list[tuple[Any, ...]] = [
                        (p_url, d_url, chunk) for chunk in _split(share, media_clients)
                    ]
                    rows.append(("join->connected", count, system, await in_client_processes("media", media_slices)))
                _progress(rows[-2:])
    finally:
        for server in servers:
            server.stop()
        bare.stop()
        await drop_database(database_url)
    print()
    print(f"{'measure':<16} {'calls':>6}  {'system':<12} {'samples':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for measure, count, system, samples in rows:
        print(
            f"{measure:<16} {count:>6}  {system:<12} {len(samples):>8} "
            f"{percentile(samples, 0.5):>8.2f} {percentile(samples, 0.99):>8.2f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
