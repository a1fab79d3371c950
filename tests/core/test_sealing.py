"""Sealing: AES-256-GCM bound to table/column/row, HKDF key separation, blind indexes, and the
master key file of the embedded default."""

from __future__ import annotations

import os
import stat

import pytest
from pydantic import SecretStr

from onecard.core.errors import ConfigurationError
from onecard.core.sealing import SealedValueError, Sealer, generate_master_key, load_master_key
from onecard.core.settings import Settings


def test_round_trip_and_fresh_nonce_each_time(sealer: Sealer) -> None:
    first = sealer.seal("11010519491231002X", table="person", column="n", row_id="r1")
    second = sealer.seal("11010519491231002X", table="person", column="n", row_id="r1")
    assert first != second
    assert b"11010519491231002X" not in first
    assert sealer.open_text(first, table="person", column="n", row_id="r1") == "11010519491231002X"


@pytest.mark.parametrize(
    ("table", "column", "row_id"),
    [("other", "n", "r1"), ("person", "other", "r1"), ("person", "n", "r2")],
)
def test_a_sealed_value_moved_elsewhere_does_not_open(
    sealer: Sealer, table: str, column: str, row_id: str
) -> None:
    sealed = sealer.seal("secret", table="person", column="n", row_id="r1")
    with pytest.raises(SealedValueError):
        sealer.open(sealed, table=table, column=column, row_id=row_id)


def test_tampered_or_foreign_values_do_not_open(sealer: Sealer) -> None:
    sealed = bytearray(sealer.seal("secret", table="t", column="c", row_id=1))
    sealed[-1] ^= 1
    with pytest.raises(SealedValueError):
        sealer.open(bytes(sealed), table="t", column="c", row_id=1)
    other = Sealer(os.urandom(32)).seal("secret", table="t", column="c", row_id=1)
    with pytest.raises(SealedValueError):
        sealer.open(other, table="t", column="c", row_id=1)
    with pytest.raises(SealedValueError):
        sealer.open(b"garbage", table="t", column="c", row_id=1)


def test_blind_index_is_deterministic_and_separated_by_purpose(sealer: Sealer) -> None:
    a = sealer.blind_index("11010519491231002X", purpose="person.identity_number")
    assert a == sealer.blind_index("11010519491231002X", purpose="person.identity_number")
    assert a != sealer.blind_index("11010519491231002X", purpose="other")
    assert a != Sealer(os.urandom(32)).blind_index(
        "11010519491231002X", purpose="person.identity_number"
    )
    assert len(a) == 32


def test_derived_keys_differ_per_label(sealer: Sealer) -> None:
    assert sealer.derive_key("seal/a.b") != sealer.derive_key("seal/a.c")
    assert "hidden" in repr(sealer)


def test_embedded_default_creates_a_private_master_key_file(tmp_path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path / "var")
    with pytest.raises(ConfigurationError):
        load_master_key(settings)
    key = load_master_key(settings, create=True)
    path = tmp_path / "var" / "master.key"
    assert len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_master_key(settings, create=True) == key  # never overwritten


def test_master_key_from_environment_wins_and_is_validated(tmp_path) -> None:
    encoded = generate_master_key()
    settings = Settings(_env_file=None, data_dir=tmp_path, master_key=SecretStr(encoded))
    assert len(load_master_key(settings)) == 32
    bad = Settings(_env_file=None, data_dir=tmp_path, master_key=SecretStr("short"))
    with pytest.raises(ConfigurationError, match="32 bytes"):
        load_master_key(bad)


def test_production_refuses_insecure_settings(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    key_file = tmp_path / "master.key"
    key_file.write_text(generate_master_key())
    key_file.chmod(0o644)
    settings = Settings(
        _env_file=None,
        env="production",
        public_url="http://id.example.gov.cn",
        master_key_file=key_file,
        password_hash_memory_kib=1024,
    )
    with pytest.raises(ConfigurationError) as caught:
        settings.check_production()
    message = caught.value.detail
    assert "https://" in message
    assert "working directory" in message
    assert "readable by group or others" in message
    assert "OWASP" in message


def test_production_accepts_a_sound_configuration(tmp_path) -> None:
    settings = Settings(
        _env_file=None,
        env="production",
        public_url="https://id.example.gov.cn",
        master_key=SecretStr(generate_master_key()),
    )
    settings.check_production()
