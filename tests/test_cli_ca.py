"""``onecard ca``: the hierarchy, issuance, revocation, CRLs, status, the root key's offline
custody and the openssl index export, from the command line on a fresh database."""

from __future__ import annotations

import json

from cryptography import x509

from tests.ca import csr_factory

PASSPHRASE = "correct horse battery staple"


def _person(run) -> str:  # type: ignore[no-untyped-def]
    from tests.factories import identity_number

    output = run(
        "person",
        "register",
        "--name",
        "李四",
        "--identity-number",
        identity_number(),
        "--level",
        "2",
    )
    return json.loads(output)["id"]


def test_init_creates_the_hierarchy_and_is_idempotent(cli) -> None:
    run, _ = cli
    assert "the hierarchy is complete" in run("ca", "init")
    listing = run("ca", "list")
    for name in ("root", "citizen-1", "enterprise-1", "service-1"):
        assert name in listing


def test_issue_status_revoke_and_crl(cli, tmp_path) -> None:
    run, _ = cli
    person = _person(run)
    request = tmp_path / "request.csr"
    request.write_bytes(csr_factory.csr())
    out = tmp_path / "leaf.pem"
    run(
        "ca",
        "issue",
        "--profile",
        "citizen-sign",
        "--csr",
        str(request),
        "--person",
        person,
        "--out",
        str(out),
    )
    leaf = x509.load_pem_x509_certificate(out.read_bytes())
    serial = format(leaf.serial_number, "x")
    assert json.loads(run("ca", "status", serial))["status"] == "valid"
    assert "revoked" in run("ca", "revoke", serial, "--reason", "privilegeWithdrawn")
    status = json.loads(run("ca", "status", serial))
    assert status["revocation_reason"] == "privilegeWithdrawn"
    crl_file = tmp_path / "citizen.crl"
    assert "1 entries" in run("ca", "crl", "citizen-1", "--out", str(crl_file))
    crl = x509.load_pem_x509_crl(crl_file.read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(leaf.serial_number) is not None
    index = tmp_path / "index.txt"
    run("ca", "export-index", "citizen-1", "--out", str(index))
    assert (tmp_path / "index.txt.attr").read_text() == "unique_subject = no\n"
    line = index.read_text().splitlines()[0].split("\t")
    assert line[0] == "R"
    assert line[2].endswith(",privilegeWithdrawn")
    assert int(line[3], 16) == leaf.serial_number


def test_bad_input_is_a_clear_error(cli, tmp_path) -> None:
    run, _ = cli
    person = _person(run)
    garbage = tmp_path / "garbage.csr"
    garbage.write_text("not a request")
    output = run(
        "ca",
        "issue",
        "--profile",
        "citizen-auth",
        "--csr",
        str(garbage),
        "--person",
        person,
        code=2,
    )
    assert "csr_malformed" in output
    assert "certificate_not_found" in run("ca", "status", "abcdef", code=2)
    assert "serial_invalid" in run("ca", "status", "not-hex", code=2)


def test_the_root_key_moves_offline_and_comes_back_for_a_ceremony(cli, tmp_path) -> None:
    run, _ = cli
    secret = tmp_path / "passphrase"
    secret.write_text(PASSPHRASE + "\n")
    exported = tmp_path / "root-key.pem"
    run("ca", "root-export", "--out", str(exported), "--passphrase-file", str(secret))
    assert exported.stat().st_mode & 0o077 == 0
    assert "file_exists" in run(
        "ca", "root-export", "--out", str(exported), "--passphrase-file", str(secret), code=2
    )
    run("ca", "root-remove-key", "--exported", str(exported), "--passphrase-file", str(secret))
    assert "offline" in run("ca", "list")
    assert "authority_key_offline" in run("ca", "authority-add", "service", code=2)
    assert "service-2" in run(
        "ca",
        "authority-add",
        "service",
        "--root-key",
        str(exported),
        "--passphrase-file",
        str(secret),
    )
    assert "published CRL" in run(
        "ca", "crl", "root", "--root-key", str(exported), "--passphrase-file", str(secret)
    )
    listing = run("ca", "list")
    assert "service-1" in listing
    assert "retired" in listing
