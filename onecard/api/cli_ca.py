"""``onecard ca``: the certificate authority from the command line.

``init``, ``list``, ``issue``, ``revoke``, ``crl`` and ``status`` are the everyday commands;
``authority-add`` / ``authority-retire`` change the hierarchy; ``root-export`` /
``root-remove-key`` move the root key to offline custody; ``dns-*`` keep the allow-list for
service TLS certificates; ``export-index`` writes an ``openssl ca`` index file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from cryptography.hazmat.primitives import serialization
from rich.table import Table

from onecard.api.cli import _actor, _enterprise, _person, _session, _show, console
from onecard.api.schemas import AuthorityOut, CertificateOut, DnsAllowanceOut
from onecard.ca import dns, hierarchy, issuance, revocation, store
from onecard.ca.crl import publish_crl
from onecard.ca.csr import check_csr
from onecard.ca.models import Authority, AuthorityKind
from onecard.ca.profiles import ProfileName, get_profile
from onecard.ca.service import get_authority, list_authorities
from onecard.core.errors import InvalidInput

ca_app = typer.Typer(help="The certificate authority.", no_args_is_help=True)

PassphraseFile = Annotated[
    Path | None,
    typer.Option(
        exists=True,
        dir_okay=False,
        help="Read the passphrase from this file instead of prompting (for scripts).",
    ),
]
RootKey = Annotated[
    Path | None,
    typer.Option(
        exists=True, dir_okay=False, help="The exported root key, when it is held offline."
    ),
]


def _passphrase(path: Path | None, *, confirm: bool) -> str:
    if path is not None:
        return path.read_text().rstrip("\n")
    return typer.prompt("Passphrase", hide_input=True, confirmation_prompt=confirm)


def _root_key(session, runtime, path: Path | None, passphrase_file: Path | None):  # type: ignore[no-untyped-def]
    if path is None:
        return None
    passphrase = _passphrase(passphrase_file, confirm=False)
    return hierarchy.load_root_key(session, runtime.ca, path.read_bytes(), passphrase)


@ca_app.command("init")
def ca_init() -> None:
    """Create the root and the issuing authorities that are missing (idempotent)."""
    with _session() as (runtime, session):
        created = hierarchy.ensure_hierarchy(session, runtime.ca, _actor())
        names = [a.name for a in created]
    console.print(f"created: {', '.join(names)}" if names else "the hierarchy is complete")


@ca_app.command("list")
def ca_list() -> None:
    """The authorities, their status and validity."""
    table = Table("name", "kind", "status", "not after", "key", "subject")
    with _session() as (runtime, session):
        for authority in list_authorities(session):
            view = AuthorityOut.of(authority, runtime.ca.certificate(authority), runtime.ca.urls)
            key = "online" if view.key_online else "offline"
            table.add_row(
                view.name, view.kind, view.status, f"{view.not_after:%Y-%m-%d}", key, view.subject
            )
    console.print(table)


@ca_app.command("issue")
def ca_issue(
    profile: Annotated[ProfileName, typer.Option(help="The certificate profile.")],
    csr: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="PKCS#10, PEM or DER.")],
    person: Annotated[str | None, typer.Option(help="UUID or identity number.")] = None,
    enterprise: Annotated[str | None, typer.Option(help="UUID or credit code.")] = None,
    dns_name: Annotated[
        list[str] | None, typer.Option("--dns", help="A DNS name (service-tls); repeat.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write the PEM here, not to stdout.")] = None,
) -> None:
    """Issue a certificate for an eligible subject, as a CA officer would."""
    if sum([person is not None, enterprise is not None, bool(dns_name)]) != 1:
        raise InvalidInput("name exactly one of --person, --enterprise or --dns", code="subject")
    with _session() as (runtime, session):
        if person is not None:
            subject = issuance.person_subject(session, _person(session, runtime, person).id)
        elif enterprise is not None:
            subject = issuance.enterprise_subject(session, _enterprise(session, enterprise).id)
        else:
            subject = issuance.service_subject(session, runtime.ca.organization, dns_name or [])
        certificate = issuance.issue(
            session,
            runtime.ca,
            profile=get_profile(profile),
            subject=subject,
            csr=check_csr(csr.read_bytes()),
            actor=_actor(),
        )
        pem = store.chain(session, runtime.ca, certificate)[0].public_bytes(
            serialization.Encoding.PEM
        )
    if out is None:
        typer.echo(pem.decode(), nl=False)
    else:
        out.write_bytes(pem)
        console.print(f"issued {certificate.serial} -> {out}")


@ca_app.command("revoke")
def ca_revoke(
    serial: str,
    reason: Annotated[str, typer.Option(help="An RFC 5280 reason name.")] = "unspecified",
) -> None:
    """Revoke a certificate (staff reasons allowed); CRL and OCSP follow within seconds."""
    with _session() as (_, session):
        certificate = store.get_by_serial(session, serial)
        parsed = revocation.parse_reason(reason, by_staff=True)
        revocation.revoke(session, certificate, parsed, actor=_actor())
    console.print(f"revoked {certificate.serial} ({reason})")


@ca_app.command("status")
def ca_status(serial: str) -> None:
    """A certificate's record: subject, validity, status and revocation."""
    with _session() as (_, session):
        certificate = store.get_by_serial(session, serial)
        name = session.get_one(Authority, certificate.authority_id).name
        _show(CertificateOut.of(certificate, name).model_dump(mode="json"))


@ca_app.command("crl")
def ca_crl(
    authority: Annotated[str, typer.Argument(help="Authority name, e.g. citizen-1 or root.")],
    out: Annotated[Path | None, typer.Option(help="Also write the CRL (PEM) here.")] = None,
    root_key: RootKey = None,
    passphrase_file: PassphraseFile = None,
) -> None:
    """Publish a new CRL for an authority now (the root's with --root-key when offline)."""
    with _session() as (runtime, session):
        found = get_authority(session, authority)
        key = _root_key(session, runtime, root_key, passphrase_file)
        crl = publish_crl(session, runtime.ca, found, actor=_actor(), key=key)
        number, entries, der = crl.number, crl.entries, crl.der
    if out is not None:
        from cryptography import x509

        out.write_bytes(x509.load_der_x509_crl(der).public_bytes(serialization.Encoding.PEM))
    console.print(f"published CRL {number} of {authority} with {entries} entries")


@ca_app.command("authority-add")
def ca_authority_add(
    kind: Annotated[AuthorityKind, typer.Argument(help="citizen, enterprise or service.")],
    root_key: RootKey = None,
    passphrase_file: PassphraseFile = None,
) -> None:
    """Add an issuing authority of a kind; the one it replaces is retired (it keeps serving
    CRLs and OCSP for what it issued)."""
    with _session() as (runtime, session):
        key = _root_key(session, runtime, root_key, passphrase_file)
        created = hierarchy.add_authority(session, runtime.ca, kind, _actor(), root_key=key)
        name = created.name
    console.print(f"created {name}; it now issues {kind} certificates")


@ca_app.command("authority-retire")
def ca_authority_retire(name: str) -> None:
    """Stop an issuing authority from issuing (its certificates stay valid)."""
    with _session() as (_, session):
        hierarchy.retire_by_name(session, name, _actor())
    console.print(f"retired {name}")


@ca_app.command("root-export")
def ca_root_export(
    out: Annotated[Path, typer.Option(help="Where to write the encrypted PKCS#8 PEM.")],
    passphrase_file: PassphraseFile = None,
) -> None:
    """Export the root key, encrypted under a passphrase, for offline custody."""
    if out.exists():
        raise InvalidInput(f"{out} exists; refusing to overwrite it", code="file_exists")
    passphrase = _passphrase(passphrase_file, confirm=True)
    with _session() as (runtime, session):
        exported = hierarchy.export_root_key(session, runtime.ca, passphrase, _actor())
    out.touch(mode=0o600)
    out.write_bytes(exported)
    console.print(f"root key written to {out} (mode 0600); keep it offline")


@ca_app.command("root-remove-key")
def ca_root_remove_key(
    exported: Annotated[
        Path, typer.Option(exists=True, dir_okay=False, help="The exported root key.")
    ],
    passphrase_file: PassphraseFile = None,
) -> None:
    """Erase the root key from the database, after checking the exported copy opens."""
    passphrase = _passphrase(passphrase_file, confirm=False)
    with _session() as (runtime, session):
        hierarchy.remove_root_key(session, runtime.ca, exported.read_bytes(), passphrase, _actor())
    console.print("the root key is now held offline only")


@ca_app.command("dns-allow")
def ca_dns_allow(pattern: str) -> None:
    """Allow a DNS name (or *.domain) in service TLS certificates."""
    with _session() as (_, session):
        allowance = dns.allow(session, pattern, actor=_actor())
        _show(DnsAllowanceOut.of(allowance).model_dump(mode="json"))


@ca_app.command("dns-list")
def ca_dns_list() -> None:
    with _session() as (_, session):
        for allowance in dns.list_allowances(session):
            console.print(f"{allowance.id}  {allowance.pattern}")


@ca_app.command("export-index")
def ca_export_index(
    authority: str,
    out: Annotated[Path, typer.Option(help="Where to write index.txt.")],
) -> None:
    """Write an authority's certificates as an ``openssl ca`` index file (and the
    ``.attr`` file beside it: a subject may hold several valid certificates)."""
    with _session() as (_, session):
        out.write_text(store.openssl_index(session, get_authority(session, authority)))
    out.with_name(out.name + ".attr").write_text("unique_subject = no\n")
    console.print(f"wrote {out}")
