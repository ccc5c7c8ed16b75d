"""Generate realistic line-protocol bodies for benchmarks (telegraf-like cpu/mem/disk/net lines)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

_HOSTS = [f"server{n:02d}" for n in range(20)]
_START_NS = 1_700_000_000_000_000_000
_STEP_NS = 10_000_000


def _cpu(rng: random.Random, host: str) -> str:
    user, system = rng.uniform(0, 60), rng.uniform(0, 30)
    return (f"cpu,cpu=cpu{rng.randrange(8)},host={host} usage_user={user:.3f},usage_system={system:.3f},"
            f"usage_idle={100 - user - system:.3f},usage_iowait={rng.uniform(0, 5):.4f}")


def _mem(rng: random.Random, host: str) -> str:
    total = 16 * 2**30
    used = rng.randrange(2**30, total)
    return (f"mem,host={host} used={used}i,free={total - used}u,"
            f"used_percent={100 * used / total:.5f},swap_in={rng.randrange(100)}i")


def _disk(rng: random.Random, host: str) -> str:
    device = rng.choice(["sda1", "sdb1", "nvme0n1p2"])
    free = rng.randrange(10**9, 10**12)
    return (f"disk,device={device},fstype=ext4,host={host},path=/data free={free}i,"
            f"used_percent={rng.uniform(0, 100):.2f},inodes_free={rng.randrange(10**6)}i,"
            f"readonly={rng.choice(['false', 'f', 'true'])}")


def _net(rng: random.Random, host: str) -> str:
    return (f"net,host={host},interface=eth{rng.randrange(2)} bytes_recv={rng.randrange(10**12)}i,"
            f"bytes_sent={rng.randrange(10**12)}i,drop_in={rng.randrange(10)}u")


def _awkward(rng: random.Random, host: str) -> str:
    """The 5%: escaped names and values, quoted strings with spaces, commas and `=`."""
    choice = rng.randrange(3)
    if choice == 0:
        return (f'syslog,host={host},facility=daemon message="session {rng.randrange(10**5)} opened, '
                f'user=admin from 10.0.0.{rng.randrange(255)}",severity="info",code={rng.randrange(99)}i')
    if choice == 1:
        return (f"disk,device=sdc1,fstype=ext4,host={host},path=/mnt/my\\ backup\\,old "
                f"free={rng.randrange(10**9)}i,used_percent={rng.uniform(0, 100):.2f}")
    return (f'docker\\ container,host={host},name=web\\=1 status="up {rng.randrange(60)} minutes",'
            f"cpu={rng.uniform(0, 4):.3f}")


_COMMON = (_cpu, _mem, _disk, _net)


def mixed_body(lines: int = 100_000, seed: int = 0) -> bytes:
    """`lines` newline-terminated lines with ns timestamps; 5% need escapes or quoted strings."""
    rng = random.Random(seed)
    out = []
    for n in range(lines):
        host = _HOSTS[rng.randrange(len(_HOSTS))]
        make = _awkward if rng.random() < 0.05 else _COMMON[rng.randrange(len(_COMMON))]
        out.append(f"{make(rng, host)} {_START_NS + n * _STEP_NS}\n")
    return "".join(out).encode("utf-8")


if __name__ == "__main__":
    print(mixed_body(20).decode(), end="")


# --- batch generators (name → rows, batch → iterator of newline-joined batches) --------------------------
def mixed_batches(rows: int, batch: int = 5000) -> Iterator[bytes]:
    """`rows` lines of the mixed body in `batch`-line bodies; every 100k lines the timestamps shift so
    no point repeats (a repeated point would be an overwrite, not new data)."""
    base = [ln for ln in mixed_body(100_000).split(b"\n") if ln]
    sent, round_ = 0, 0
    while sent < rows:
        lines = base if round_ == 0 else [_shift(ln, round_) for ln in base]
        for i in range(0, len(lines), batch):
            if sent >= rows:
                return
            chunk = lines[i:i + min(batch, rows - sent)]
            sent += len(chunk)
            yield b"\n".join(chunk)
        round_ += 1


def endless_mixed_batches(batch: int = 5000) -> Iterator[bytes]:
    """`mixed_batches` without end, cheap enough to generate while sending at full speed: round r of the
    100k-line body moves every timestamp by r x 1000 s, which only rewrites their first seven digits (one
    `bytes.replace` per batch instead of formatting each line), so no point ever repeats."""
    base = [ln for ln in mixed_body(100_000).split(b"\n") if ln]
    batches = [b"\n".join(base[i:i + batch]) for i in range(0, len(base), batch)]
    prefix = str(_START_NS)[:7].encode()
    assert _START_NS % 10**12 == 0 and len(base) * _STEP_NS <= 10**12
    round_ = 0
    while True:
        shifted = b" " + str(int(prefix) + round_).encode()
        for body in batches:
            yield body if round_ == 0 else body.replace(b" " + prefix, shifted)
        round_ += 1


def _shift(line: bytes, round_: int) -> bytes:
    head, _, ts = line.rpartition(b" ")
    return head + b" " + str(int(ts) + round_ * 1_000_000_007).encode()


CPU_HOSTS = 100
CPU_CORES = 8
CPU_STEP_NS = 1_000_000  # one row per millisecond: 10M rows span 2.8 hours


def cpu_batches(rows: int, batch: int = 5000, seed: int = 1) -> Iterator[bytes]:
    """A regular `cpu` table for GROUP BY queries: 100 hosts × 8 cores, 4 float fields, 1 ms apart."""
    rng = random.Random(seed)
    series = [f"cpu,cpu=cpu{c},host=host{h:03d}" for h in range(CPU_HOSTS) for c in range(CPU_CORES)]
    for start in range(0, rows, batch):
        out = []
        for n in range(start, min(rows, start + batch)):
            user, system = rng.random() * 60, rng.random() * 30
            out.append(f"{series[n % len(series)]} usage_user={user:.3f},usage_system={system:.3f},"
                       f"usage_idle={100 - user - system:.3f},usage_iowait={rng.random() * 5:.3f} "
                       f"{_START_NS + n * CPU_STEP_NS}")
        yield "\n".join(out).encode()


def cpu_time_range(rows: int) -> tuple[int, int]:
    """[first, last] timestamp (ns) of `cpu_batches(rows)`."""
    return _START_NS, _START_NS + (rows - 1) * CPU_STEP_NS


TELEGRAF_HOSTS = 1250
TELEGRAF_CPUS = 4
TELEGRAF_INTERVAL_NS = 10_000_000_000


def telegraf_batches(rows: int, batch: int = 5000, seed: int = 2) -> Iterator[bytes]:
    """Telegraf's cpu input from a fleet: 1,250 hosts × 4 cpus = 5,000 series, 5 float fields printed at full
    precision (as Telegraf prints them), one timestamp per 5,000-line batch (one collection interval)."""
    rng = random.Random(seed)
    series = [f"cpu,cpu=cpu{c},host=host{h:04d}" for h in range(TELEGRAF_HOSTS) for c in range(TELEGRAF_CPUS)]
    for start in range(0, rows, batch):
        stamp = _START_NS + (start // len(series)) * TELEGRAF_INTERVAL_NS
        out = []
        for n in range(start, min(rows, start + batch)):
            user, system = rng.random() * 60, rng.random() * 30
            out.append(f"{series[n % len(series)]} usage_user={user!r},usage_system={system!r},"
                       f"usage_idle={100 - user - system!r},usage_iowait={rng.random() * 5!r},"
                       f"usage_steal={rng.random() * 0.5!r} {stamp}")
        yield "\n".join(out).encode()


def telegraf_body(lines: int = 100_000) -> bytes:
    """`lines` lines of the Telegraf-like body as one newline-terminated body."""
    return b"\n".join(telegraf_batches(lines, lines)) + b"\n"


GENERATORS: dict[str, Callable[[int, int], Iterator[bytes]]] = {
    "mixed": mixed_batches, "cpu": cpu_batches, "telegraf": telegraf_batches,
}


def endless_batches(name: str, batch: int = 5000, pool_lines: int = 100_000,
                    transform: Callable[[bytes], bytes] | None = None) -> Iterator[bytes]:
    """Batches of the `mixed` or `telegraf` body without end, every point new, from a pool generated once:
    a timed run cannot hold all its lines in memory, and generating them as it goes would load the client.
    `transform` rewrites the pool once (InfluxDB 1.x's spelling of unsigned values)."""
    if name == "telegraf":
        pool = list(telegraf_batches(pool_lines, batch))
        stamps = [b" %d" % (_START_NS + i * TELEGRAF_INTERVAL_NS) for i in range(len(pool))]
    elif name == "mixed":
        pool = list(mixed_batches(pool_lines, batch))
        # Pool timestamps are 1700000xxxxxxxxxxxx; round r rewrites that prefix to 17rrrrr (same length).
        stamps = [b" 1700000"] * len(pool)
    else:
        raise ValueError(f"no endless generator for {name!r}")
    if transform is not None:
        pool = [transform(b) for b in pool]
    sent = 0
    while True:
        for body, stamp in zip(pool, stamps, strict=True):
            if name == "telegraf":
                fresh = b" %d" % (_START_NS + sent * TELEGRAF_INTERVAL_NS)
            else:
                fresh = b" 17%05d" % (sent // len(pool))
            yield body if fresh == stamp else body.replace(stamp, fresh)
            sent += 1
