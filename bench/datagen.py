"""Deterministic test data for benchmarks: N valid citizen rows for ``onecard import persons``.

Self-contained on purpose (no import from ``tests/`` or ``onecard``) so a benchmark measures
the importer, not its own helpers. Row ``i`` is the same on every run and every machine: the
identity number is built from (region, birth date, sequence) chosen so no two rows share one,
and phone, email and external reference are derived from ``i``, so all of them are unique.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

HEADER = ("name", "identity_number", "phone", "email", "assurance_level", "external_ref")
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_REGIONS = ("110105", "310104", "320102", "440305", "510107", "330106", "420102", "610113")
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂"
_FIRST_BIRTH = date(1940, 1, 1)
_SEQUENCES = 1000


def identity_number(index: int) -> str:
    """The ``index``-th number: unique for every index below 8 regions x 1000 sequences x ~30,000 days."""
    region = _REGIONS[index % len(_REGIONS)]
    slot = index // len(_REGIONS)
    birth = _FIRST_BIRTH + timedelta(days=slot // _SEQUENCES)
    body = f"{region}{birth:%Y%m%d}{slot % _SEQUENCES:03d}"
    total = sum(int(digit) * weight for digit, weight in zip(body, _WEIGHTS, strict=True))
    return body + _CHECK[total % 11]


def rows(count: int, *, seed: int = 2026) -> Iterator[tuple[str, ...]]:
    """``count`` valid rows in :data:`HEADER` order; the same ``seed`` gives the same rows."""
    rng = random.Random(seed)
    for index in range(count):
        name = rng.choice(_SURNAMES) + "".join(rng.choices(_GIVEN, k=rng.randint(1, 2)))
        yield (
            name,
            identity_number(index),
            f"139{index:08d}",
            f"citizen{index}@example.cn",
            "2" if rng.random() < 0.2 else "1",
            f"LEGACY-{index:08d}",
        )


def write_csv(path: Path, count: int, *, seed: int = 2026) -> Path:
    """Write a UTF-8 CSV with a header and ``count`` valid rows; returns ``path``."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows(count, seed=seed))
    return path
