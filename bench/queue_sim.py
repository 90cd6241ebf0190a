"""Queue simulation: how wrong is the wait the patient is told? (issue 10 item 5, R11.7)

A discrete-time simulation of one specialty's queue over several days: Poisson arrivals whose
rate follows the time of day, log-normal consultation lengths, a duty roster, a per-doctor
limit of simultaneous consultations, no new consultation in a doctor's last minutes of duty,
first come first served. At every arrival both estimates are computed from what the server
would know at that moment, and compared afterwards with the wait that actually happened:

- naive: ``consultation.estimate_wait`` (people ahead / doctors on duty x mean length), the
  estimate the server showed before;
- honest: ``wait.estimate_honest_wait`` (capacity, limits, time left on shifts, busy slots,
  the next shifts), which may answer "unknown".

Run: ``python -m bench.queue_sim [--days 7] [--seed 1]``. Both columns come from the same run.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from server.domain.consultation import estimate_wait
from server.domain.wait import DoctorCapacity, estimate_honest_wait

STEP = timedelta(seconds=15)
MIN_REMAINING = timedelta(minutes=10)
START = datetime(2026, 12, 7, 0, 0, tzinfo=UTC)  # a Monday, 03:00 Moscow


@dataclass(frozen=True, slots=True)
class SimShift:
    doctor_id: int
    starts_at: datetime
    ends_at: datetime


@dataclass(slots=True)
class Patient:
    arrived_at: datetime
    service: timedelta
    naive: int | None = None
    honest: int | None = None
    served_at: datetime | None = None


@dataclass(slots=True)
class Doctor:
    doctor_id: int
    limit: int
    busy: list[tuple[datetime, datetime]] = field(default_factory=list)  # (started, ends)


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    doctors: int
    limit: int
    shifts: Sequence[SimShift]
    rate_per_hour: Sequence[float]  # by UTC hour
    mean_minutes: float


def _roster(days: int, pattern: Sequence[tuple[int, int, int]]) -> list[SimShift]:
    """Shifts repeating each day: (doctor, start hour UTC, length hours)."""
    shifts = []
    for day in range(days + 1):
        base = START + timedelta(days=day)
        for doctor, hour, length in pattern:
            shifts.append(SimShift(doctor, base + timedelta(hours=hour), base + timedelta(hours=hour + length)))
    return shifts


def scenarios(days: int) -> list[Scenario]:
    """A scarce specialty and general practice with overlapping shifts, under day and night load."""
    daytime = [0.5] * 5 + [2.0] * 4 + [5.0] * 8 + [2.5] * 4 + [1.0] * 3  # UTC hours; Moscow = UTC+3
    gp_load = [3.0] * 4 + [12.0] * 5 + [22.0] * 8 + [12.0] * 4 + [5.0] * 3
    return [
        Scenario(
            "dermatology: one doctor 06-18 UTC, limit 3",
            1,
            3,
            _roster(days, [(1, 6, 12)]),
            daytime,
            15.0,
        ),
        Scenario(
            "general practice: 4 GPs, every shift ends at the same minute",
            4,
            3,
            _roster(days, [(1, 0, 12), (2, 0, 12), (3, 12, 12), (4, 12, 12)]),
            gp_load,
            15.0,
        ),
        Scenario(
            "general practice: 4 GPs, shifts overlapping by one hour (the demo roster)",
            4,
            3,
            _roster(days, [(1, 0, 12), (2, 1, 12), (3, 12, 12), (4, 13, 12)]),
            gp_load,
            15.0,
        ),
    ]


def _service(rng: random.Random, mean_minutes: float) -> timedelta:
    sigma = 0.5
    mu = math.log(mean_minutes) - sigma * sigma / 2
    return timedelta(minutes=rng.lognormvariate(mu, sigma))


def _on_duty(shifts: Sequence[SimShift], now: datetime) -> dict[int, SimShift]:
    return {s.doctor_id: s for s in shifts if s.starts_at <= now < s.ends_at}


def run(scenario: Scenario, days: int, seed: int) -> list[Patient]:
    """Play the scenario; every patient gets both estimates at arrival and their actual wait."""
    rng = random.Random(seed)
    mean = timedelta(minutes=scenario.mean_minutes)
    doctors = {i: Doctor(i, scenario.limit) for i in range(1, scenario.doctors + 1)}
    queue: list[Patient] = []
    patients: list[Patient] = []
    now = START
    end = START + timedelta(days=days)
    while now < end:
        # Consultations that ended free their slot.
        for doctor in doctors.values():
            doctor.busy = [b for b in doctor.busy if b[1] > now]
        duty = _on_duty(scenario.shifts, now)
        # Arrivals in this step (Poisson).
        rate = scenario.rate_per_hour[now.hour] * STEP.total_seconds() / 3600
        arrivals = 0
        threshold, product = math.exp(-rate), rng.random()
        while product > threshold:
            arrivals += 1
            product *= rng.random()
        for _ in range(arrivals):
            patient = Patient(now, _service(rng, scenario.mean_minutes))
            queue.append(patient)
            patients.append(patient)
            position = len(queue)
            patient.naive = estimate_wait(position, len(duty), scenario.mean_minutes).minutes
            capacity = [
                DoctorCapacity(
                    s.doctor_id,
                    doctors[s.doctor_id].limit,
                    max(now, s.starts_at),
                    s.ends_at - MIN_REMAINING,
                    tuple(b[0] for b in doctors[s.doctor_id].busy) if s.starts_at <= now else (),
                )
                for s in scenario.shifts
                if s.ends_at > now and s.starts_at < now + timedelta(hours=12)
            ]
            patient.honest = estimate_honest_wait(position, capacity, mean, now).minutes
        # Free slots of doctors not in their last minutes take the queue's head.
        for doctor_id, shift in sorted(duty.items()):
            doctor = doctors[doctor_id]
            while queue and len(doctor.busy) < doctor.limit and shift.ends_at - now > MIN_REMAINING:
                patient = queue.pop(0)
                patient.served_at = now
                doctor.busy.append((now, now + patient.service))
        now += STEP
    return [p for p in patients if p.served_at is not None]


@dataclass(frozen=True, slots=True)
class Errors:
    answered: int
    unknown: int
    mae: float
    p90: float
    bias: float
    said_zero_waited_over_5: int


def errors(patients: Sequence[Patient], attribute: str) -> Errors:
    """Absolute error (minutes) of one estimate against the actual waits."""
    diffs: list[float] = []
    unknown = zero_but_waited = 0
    for p in patients:
        assert p.served_at is not None
        actual = (p.served_at - p.arrived_at).total_seconds() / 60
        told = getattr(p, attribute)
        if told is None:
            unknown += 1
            continue
        diffs.append(told - actual)
        if told == 0 and actual > 5:
            zero_but_waited += 1
    absolute = sorted(abs(d) for d in diffs)
    p90 = absolute[int(0.9 * (len(absolute) - 1))] if absolute else float("nan")
    return Errors(
        len(diffs),
        unknown,
        statistics.fmean(absolute) if absolute else float("nan"),
        p90,
        statistics.fmean(diffs) if diffs else float("nan"),
        zero_but_waited,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    for scenario in scenarios(args.days):
        served = run(scenario, args.days, args.seed)
        waits = sorted((p.served_at - p.arrived_at).total_seconds() / 60 for p in served if p.served_at)
        p90 = waits[int(0.9 * (len(waits) - 1))]
        print(
            f"\n{scenario.name}: {len(served)} patients over {args.days} days, "
            f"mean actual wait {statistics.fmean(waits):.1f} min, p90 {p90:.1f} min"
        )
        header = ("estimate", "answered", "unknown", "MAE min", "p90 |err|", "bias", "said 0, waited >5 min")
        print(f"{header[0]:<8} " + " ".join(f"{h:>{max(8, len(h))}}" for h in header[1:]))
        for label, attribute in (("naive", "naive"), ("honest", "honest")):
            e = errors(served, attribute)
            print(
                f"{label:<8} {e.answered:>8} {e.unknown:>8} {e.mae:>8.1f} {e.p90:>9.1f} {e.bias:>8.1f} "
                f"{e.said_zero_waited_over_5:>21}"
            )


if __name__ == "__main__":
    main()
