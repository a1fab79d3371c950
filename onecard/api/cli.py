"""The ``onecard`` command line: serve (and the dedicated OCSP responder), database, keys,
audit, administrators, persons, enterprises, imports, the OpenAPI document and clients; the
certificate authority (``onecard.api.cli_ca``), and terminals and card verification
(``onecard.api.cli_card``).

Commands act on the database named by the ``ONECARD_*`` settings, through the same domain
functions as the HTTP API, and are audited as ``cli`` actions under the operating-system user.
"""

from __future__ import annotations

import functools
import getpass
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sqlmodel import Session
from typer.core import TyperGroup

from onecard.api.runtime import Runtime, build_runtime, prepare
from onecard.api.schemas import EnterpriseOut, PersonOut
from onecard.ca.service import list_authorities
from onecard.core.audit import Actor, checkpoint, verify_chain
from onecard.core.db import Database
from onecard.core.errors import ConfigurationError, InvalidState, NotFound, OnecardError
from onecard.core.sealing import SealedValueError, generate_master_key
from onecard.core.settings import Settings, get_settings
from onecard.identity import bootstrap, enterprises, persons, staff
from onecard.identity.importer import count_rows, import_persons
from onecard.identity.lifecycle import StatusChange
from onecard.identity.models import AssuranceLevel, Person, RegisteredBy, StaffRoleName
from onecard.identity.oidc.first_party import mint_person_token
from onecard.identity.oidc.sessions import change_person_status

console = Console()
err = Console(stderr=True)


class _Commands(TyperGroup):
    """Turns domain errors into a one-line message and exit status 2, never a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except OnecardError as exc:
            err.print(f"[red]error[/red] ({exc.code}): {exc.detail}", highlight=False)
            raise typer.Exit(2) from None


app = typer.Typer(
    cls=_Commands,
    help="onecard: citizen one-card and identity trust service.",
    no_args_is_help=True,
)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
keys_app = typer.Typer(help="Signing keys: list, rotate, prune.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit trail: verify, checkpoint.", no_args_is_help=True)
admin_app = typer.Typer(
    help="Administrators: bootstrap, tokens, staff roles.", no_args_is_help=True
)
person_app = typer.Typer(help="Persons (citizens).", no_args_is_help=True)
enterprise_app = typer.Typer(help="Enterprises and their members.", no_args_is_help=True)
import_app = typer.Typer(help="Bulk imports from existing systems.", no_args_is_help=True)
for sub, name in (
    (db_app, "db"),
    (keys_app, "keys"),
    (audit_app, "audit"),
    (admin_app, "admin"),
    (person_app, "person"),
    (enterprise_app, "enterprise"),
    (import_app, "import"),
):
    app.add_typer(sub, name=name)


def main() -> None:
    app()


def _actor() -> Actor:
    return Actor.cli(getpass.getuser())


@contextmanager
def _runtime() -> Iterator[Runtime]:
    runtime = build_runtime(get_settings())
    try:
        yield runtime
    finally:
        runtime.close()


@contextmanager
def _session() -> Iterator[tuple[Runtime, Session]]:
    with _runtime() as runtime, runtime.database.session() as session:
        yield runtime, session


def _person(session: Session, runtime: Runtime, ref: str) -> Person:
    """A person by UUID or by identity number."""
    try:
        return persons.get_person(session, uuid.UUID(ref))
    except ValueError:
        pass
    person = persons.find_by_identity_number(session, runtime.sealer, ref)
    if person is None:
        raise NotFound("no such person", code="person_not_found")
    return person


def _show(data: dict) -> None:
    console.print_json(json.dumps(data, default=str, ensure_ascii=False))


def _person_view(person: Person) -> dict:
    return PersonOut.of(person).model_dump(mode="json")


# -- serve --------------------------------------------------------------------------------


@app.command()
def init() -> None:
    """Prepare the service without starting it: master key, migrations, signing keys, CA."""
    prepared = prepare(get_settings())
    prepared.runtime.close()
    console.print("ready: database migrated, signing keys and the CA hierarchy in place")
    if prepared.needs_admin:
        _print_bootstrap(prepared.bootstrap_token, get_settings().public_url or None)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes.")] = 1,
) -> None:
    """Run the service (embedded default: SQLite and a master key under ./var/)."""
    from onecard.api import server

    settings = get_settings()
    public_url = settings.public_url or f"http://{host}:{port}"
    os.environ.setdefault("ONECARD_PUBLIC_URL", public_url)
    get_settings.cache_clear()
    prepared = prepare(get_settings())
    prepared.runtime.close()
    if prepared.needs_admin:
        _print_bootstrap(prepared.bootstrap_token, public_url)
    if workers > 1:
        _multiprocess_metrics(settings)
    console.print(f"onecard serving on {public_url} (docs at {public_url}/docs)")
    options = {"factory": True, "access_log": False, "proxy_headers": True, "server_header": False}
    app_path = "onecard.api.main:app_from_environment"
    worker = functools.partial(server.uvicorn_worker, app=app_path, options=options)
    server.run(worker, host=host, port=port, workers=workers)


@app.command("ocsp-responder")
def ocsp_responder(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8001,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
) -> None:
    """Run the dedicated OCSP responder (POST /ocsp, GET /ocsp/…), for deployments that route
    /ocsp and /ocsp/* to it. Needs a database prepared by `onecard init` or `onecard serve`:
    it migrates nothing and creates no keys."""
    from onecard.api import ocsp_server, server

    with _runtime() as runtime:
        _check_ocsp_ready(runtime)
    console.print(f"onecard OCSP responder on http://{host}:{port}/ocsp ({workers} workers)")
    server.run(ocsp_server.ocsp_worker, host=host, port=port, workers=workers)


def _check_ocsp_ready(runtime: Runtime) -> None:
    """Refuse to answer OCSP from a database without a CA, or with the wrong master key (every
    answer would be an error)."""
    if runtime.database.current_revision() is None:
        raise InvalidState(
            "the database has no schema: run `onecard init` first", code="not_initialised"
        )
    with runtime.database.read_session() as session:
        responders = [a for a in list_authorities(session) if a.ocsp_certificate]
        if not responders:
            raise InvalidState(
                "the database has no CA hierarchy: run `onecard init` first",
                code="authority_missing",
            )
        try:
            runtime.ca.private_key(responders[0], "ocsp_private_key")
        except SealedValueError:
            raise ConfigurationError(
                "the master key does not open the CA's keys: not the one `onecard init` used",
                code="master_key_mismatch",
            ) from None


def _multiprocess_metrics(settings: Settings) -> None:
    directory = settings.data_dir / "metrics"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


def _print_bootstrap(token: str | None, public_url: str | None) -> None:
    """How to create the first administrator; the token itself is shown only when just issued."""
    base = public_url or "http://127.0.0.1:8000"
    shown = token or "<token printed at the first start; new one: onecard admin bootstrap-token>"
    console.print(
        "\n[bold]No administrator yet.[/bold] Create the first one, once, in either way:\n"
        "  1. on this machine:  onecard admin bootstrap\n"
        f"  2. over HTTP:        POST {base}/v1/bootstrap\n"
        f"                       Authorization: Bearer {shown}\n"
        '                       {"name": …, "identity_number": …, "password": …}\n'
        "The bootstrap token works once and expires in 24 hours.\n",
        highlight=False,
        soft_wrap=True,
    )


# -- db -----------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    database = Database(get_settings().effective_database_url)
    database.upgrade(revision)
    console.print(f"database at revision {database.current_revision()}")
    database.dispose()


@db_app.command("current")
def db_current() -> None:
    """Print the database's migration revision."""
    database = Database(get_settings().effective_database_url)
    console.print(database.current_revision() or "(empty database)")
    database.dispose()


# -- keys ---------------------------------------------------------------------------------


@app.command()
def worker(
    poll_seconds: Annotated[float, typer.Option(min=0.1, help="Idle polling interval.")] = 1.0,
) -> None:
    """Run the background job loop (back-channel logouts) until interrupted."""
    import signal
    import threading

    from onecard.core.jobs import JobContext, run_forever
    from onecard.identity.oidc import backchannel  # noqa: F401  (registers its handler)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with _runtime() as runtime:
        console.print("onecard worker running (Ctrl-C to stop)")
        try:
            run_forever(JobContext.from_runtime(runtime), stop, poll_seconds=poll_seconds)
        except KeyboardInterrupt:
            stop.set()


@keys_app.command("list")
def keys_list() -> None:
    """List signing keys and their states (never the private keys)."""
    with _session() as (runtime, session):
        table = Table("kid", "purpose", "alg", "state", "created", "retired")
        for key in runtime.keyring.list_keys(session):
            table.add_row(
                key.kid,
                key.purpose,
                key.alg,
                key.state,
                f"{key.created_at:%Y-%m-%d %H:%M}",
                f"{key.retired_at:%Y-%m-%d %H:%M}" if key.retired_at else "",
            )
        console.print(table)


@keys_app.command("rotate")
def keys_rotate(
    purpose: Annotated[
        str | None, typer.Option(help="Only this purpose (token, audit, card, trust_list).")
    ] = None,
) -> None:
    """Rotate: next becomes active, active is retired (still published), a new next is made."""
    with _session() as (runtime, session):
        for change in runtime.keyring.rotate(session, _actor(), purpose):
            console.print(f"{change.purpose}/{change.alg}: {change.kid} -> {change.state}")


@keys_app.command("prune")
def keys_prune() -> None:
    """Remove retired keys whose retirement period is over."""
    with _session() as (runtime, session):
        changes = runtime.keyring.prune(session, _actor())
        console.print(f"removed {len(changes)} key(s)")


# -- audit --------------------------------------------------------------------------------


@audit_app.command("verify")
def audit_verify() -> None:
    """Prove the audit chain intact, or name the first broken event (exit status 1)."""
    with _session() as (runtime, session):
        report = verify_chain(session, runtime.keyring)
    if report.ok:
        console.print(
            f"audit chain intact: {report.events} events, {report.checkpoints} signed checkpoints"
        )
        return
    broken = report.broken
    assert broken is not None
    err.print(f"[red]audit chain broken[/red] at event {broken.seq}: {broken.reason}")
    if broken.event_id:
        err.print(f"event id {broken.event_id}")
    raise typer.Exit(1)


@audit_app.command("checkpoint")
def audit_checkpoint() -> None:
    """Sign the current end of the chain with the audit key."""
    with _session() as (runtime, session):
        mark = checkpoint(session, runtime.keyring)
        console.print(f"checkpoint at event {mark.seq}" if mark else "nothing new to checkpoint")


# -- admin --------------------------------------------------------------------------------


@admin_app.command("bootstrap")
def admin_bootstrap(
    name: Annotated[str, typer.Option(prompt=True)],
    identity_number: Annotated[str, typer.Option(prompt=True)],
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            envvar="ONECARD_BOOTSTRAP_PASSWORD",
        ),
    ],
    phone: str | None = None,
    email: str | None = None,
) -> None:
    """Create the first administrator directly (only while none exists)."""
    with _session() as (runtime, session):
        person = bootstrap.create_first_admin(
            session,
            runtime.sealer,
            runtime.hasher,
            persons.NewPerson(name, identity_number, phone, email),
            password,
            actor=_actor(),
        )
        console.print(f"first administrator created: {person.id}")


@admin_app.command("bootstrap-token")
def admin_bootstrap_token() -> None:
    """Issue a new one-time bootstrap token (the printed one was lost or expired)."""
    with _session() as (_, session):
        token = bootstrap.reissue_bootstrap_token(session, _actor())
    _print_bootstrap(token, get_settings().public_url or None)


@admin_app.command("token")
def admin_token(
    person: Annotated[str, typer.Option(help="Staff member: UUID or identity number.")],
    ttl_minutes: Annotated[int, typer.Option(min=1, help="Lifetime in minutes.")] = 60,
) -> None:
    """Mint a short-lived access token for a staff member (printed once; revocable)."""
    settings = get_settings()
    ttl = timedelta(minutes=ttl_minutes)
    if ttl.total_seconds() > settings.admin_token_max_ttl_seconds:
        raise ConfigurationError(
            f"at most {settings.admin_token_max_ttl_seconds // 60} minutes", code="ttl_too_long"
        )
    with _session() as (runtime, session):
        holder = _person(session, runtime, person)
        if not staff.current_roles(session, holder.id):
            raise NotFound("this person holds no staff role", code="not_staff")
        token = mint_person_token(
            session,
            runtime.provider,
            holder,
            scope="openid account staff",
            ttl=ttl,
            actor=_actor(),
        )
    typer.echo(token)  # plain: a wrapped token could not be copied
    err.print(f"expires in {ttl_minutes} minutes")


@admin_app.command("grant")
def admin_grant(
    person: Annotated[str, typer.Option(help="UUID or identity number.")],
    role: Annotated[StaffRoleName, typer.Option(help="Staff role.")],
) -> None:
    """Grant a staff role."""
    with _session() as (runtime, session):
        grant = staff.grant_role(
            session, _person(session, runtime, person), role, actor=_actor(), granted_by=None
        )
        console.print(f"granted {role} ({grant.id})")


@admin_app.command("withdraw")
def admin_withdraw(grant_id: uuid.UUID) -> None:
    """Withdraw a staff role grant."""
    with _session() as (_, session):
        grant = staff.withdraw_role(session, grant_id, actor=_actor(), withdrawn_by=None)
        console.print(f"withdrew {grant.role} from {grant.person_id}")


@admin_app.command("roles")
def admin_roles() -> None:
    """List current staff roles."""
    with _session() as (_, session):
        table = Table("grant", "person", "role", "granted")
        for grant in staff.list_grants(session, limit=200, cursor=None).items:
            table.add_row(
                str(grant.id), str(grant.person_id), grant.role, f"{grant.granted_at:%Y-%m-%d}"
            )
        console.print(table)


@admin_app.command("master-key")
def admin_master_key() -> None:
    """Print a new random master key for ONECARD_MASTER_KEY (production set-up)."""
    console.print(generate_master_key(), highlight=False)


# -- person -------------------------------------------------------------------------------


@person_app.command("register")
def person_register(
    name: Annotated[str, typer.Option()],
    identity_number: Annotated[str, typer.Option()],
    level: Annotated[int, typer.Option(min=1, max=3)] = 2,
    document_checked: Annotated[
        str, typer.Option(help="Document seen in person (levels 2 and 3).")
    ] = "resident identity card",
    phone: str | None = None,
    email: str | None = None,
) -> None:
    """Register a person after an in-person check."""
    with _session() as (runtime, session):
        person = persons.register_person(
            session,
            runtime.sealer,
            persons.NewPerson(name, identity_number, phone, email),
            actor=_actor(),
            level=AssuranceLevel(level),
            registered_by=RegisteredBy.REGISTRAR,
            evidence={"document_checked": document_checked},
        )
        _show(_person_view(person))


@person_app.command("show")
def person_show(person: Annotated[str, typer.Argument(help="UUID or identity number.")]) -> None:
    """Show a person (masked; the look-up is audited)."""
    with _session() as (runtime, session):
        found = _person(session, runtime, person)
        persons.record_staff_view(session, [found], actor=_actor(), why="cli")
        _show(_person_view(found))


@person_app.command("list")
def person_list(limit: int = 50, cursor: str | None = None) -> None:
    """List persons, oldest first (audited)."""
    with _session() as (_, session):
        page = persons.list_persons(session, limit=limit, cursor=cursor)
        persons.record_staff_view(session, page.items, actor=_actor(), why="cli list")
        table = Table("id", "name", "identity number", "level", "status")
        for p in page.items:
            table.add_row(
                str(p.id), p.name, p.identity_number_masked, str(p.assurance_level), p.status
            )
        console.print(table)
        if page.next_cursor:
            console.print(f"next page: --cursor {page.next_cursor}")


@person_app.command("set-level")
def person_set_level(
    person: str,
    level: Annotated[int, typer.Option(min=1, max=3)],
    evidence: Annotated[str, typer.Option(help="What was checked.")],
) -> None:
    """Set a person's assurance level."""
    with _session() as (runtime, session):
        changed = persons.set_assurance_level(
            session,
            _person(session, runtime, person),
            AssuranceLevel(level),
            actor=_actor(),
            evidence=evidence,
        )
        _show(_person_view(changed))


def _person_status_command(change: StatusChange, help_text: str) -> None:
    verb = change.value

    @person_app.command(verb, help=help_text)
    def command(person: str, reason: Annotated[str, typer.Option()]) -> None:
        with _session() as (runtime, session):
            changed = change_person_status(
                session,
                runtime.provider,
                _person(session, runtime, person),
                change,
                actor=_actor(),
                reason=reason,
            )
            _show(_person_view(changed))


_person_status_command(StatusChange.SUSPEND, "Suspend a person (revokes tokens).")
_person_status_command(StatusChange.REINSTATE, "Reinstate a suspended person.")
_person_status_command(StatusChange.CLOSE, "Close a person's record (final).")


# -- enterprise ---------------------------------------------------------------------------


def _enterprise_view(enterprise: enterprises.Enterprise) -> dict:
    return EnterpriseOut.of(enterprise).model_dump(mode="json")


@enterprise_app.command("register")
def enterprise_register(
    name: Annotated[str, typer.Option()],
    credit_code: Annotated[str, typer.Option()],
    legal_representative: Annotated[str, typer.Option(help="UUID or identity number.")],
) -> None:
    """Register an enterprise with its legal representative."""
    with _session() as (runtime, session):
        representative = _person(session, runtime, legal_representative)
        enterprise = enterprises.register_enterprise(
            session,
            enterprises.NewEnterprise(name, credit_code, representative.id),
            actor=_actor(),
        )
        _show(_enterprise_view(enterprise))


@enterprise_app.command("show")
def enterprise_show(ref: Annotated[str, typer.Argument(help="UUID or credit code.")]) -> None:
    """Show an enterprise and its current roles."""
    with _session() as (_, session):
        enterprise = _enterprise(session, ref)
        _show(
            {
                **_enterprise_view(enterprise),
                "roles": [
                    {"grant": str(g.id), "person": str(g.person_id), "role": g.role}
                    for g in enterprises.current_grants(session, enterprise.id)
                ],
            }
        )


@enterprise_app.command("set-legal-representative")
def enterprise_set_representative(ref: str, person: Annotated[str, typer.Option()]) -> None:
    """Record a new legal representative (existing roles are kept)."""
    with _session() as (runtime, session):
        enterprise = enterprises.change_legal_representative(
            session, _enterprise(session, ref), _person(session, runtime, person).id, actor=_actor()
        )
        _show(_enterprise_view(enterprise))


@enterprise_app.command("grant")
def enterprise_grant(
    ref: str, person: Annotated[str, typer.Option()], role: Annotated[str, typer.Option()]
) -> None:
    """Grant a person a role in an enterprise."""
    with _session() as (runtime, session):
        grant = enterprises.grant_role(
            session,
            _enterprise(session, ref),
            _person(session, runtime, person).id,
            role,
            actor=_actor(),
            granted_by=None,
        )
        console.print(f"granted {grant.role} ({grant.id})")


@enterprise_app.command("withdraw")
def enterprise_withdraw(ref: str, grant_id: uuid.UUID) -> None:
    """Withdraw a role grant."""
    with _session() as (_, session):
        grant = enterprises.withdraw_role(
            session, _enterprise(session, ref), grant_id, actor=_actor(), withdrawn_by=None
        )
        console.print(f"withdrew {grant.role} from {grant.person_id}")


def _enterprise(session: Session, ref: str) -> enterprises.Enterprise:
    try:
        return enterprises.get_enterprise(session, uuid.UUID(ref))
    except ValueError:
        pass
    found = enterprises.find_by_credit_code(session, ref)
    if found is None:
        raise NotFound("no such enterprise", code="enterprise_not_found")
    return found


# -- import -------------------------------------------------------------------------------


@import_app.command("persons")
def import_persons_command(
    source: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    report: Annotated[
        Path | None,
        typer.Option(help="Where to write rejected rows (default: SOURCE.rejected.csv)."),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=10000)] = 1000,
) -> None:
    """Import persons from CSV: validated, idempotent, with a report of rejected rows."""
    report_path = report or source.with_suffix(".rejected.csv")
    total_rows = count_rows(source)
    with (
        _runtime() as runtime,
        Progress(
            TextColumn("importing"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err,
            disable=not err.is_terminal and os.environ.get("CI") == "true",
        ) as progress,
    ):
        task = progress.add_task("rows", total=total_rows)
        summary = import_persons(
            runtime.database,
            runtime.sealer,
            source,
            actor=_actor(),
            report_path=report_path,
            batch_size=batch_size,
            progress=lambda n: progress.advance(task, n),
        )
    console.print(
        f"{summary.total} rows: {summary.imported} imported, {summary.unchanged} unchanged, "
        f"{summary.rejected} rejected"
    )
    if summary.rejected:
        console.print(f"rejected rows and reasons: {summary.report_path}")


# -- openapi ------------------------------------------------------------------------------

OPENAPI_PATH = Path("openapi/openapi.json")


def openapi_document() -> str:
    """The OpenAPI document as committed: generated from the app, stable key order."""
    from onecard.api.main import create_app

    app_ = create_app(None)
    return json.dumps(app_.openapi(), indent=2, ensure_ascii=False, sort_keys=False) + "\n"


@app.command()
def openapi(
    check: Annotated[bool, typer.Option(help="Fail if the committed file is stale.")] = False,
    output: Path = OPENAPI_PATH,
) -> None:
    """Write openapi/openapi.json from the application (or --check it)."""
    document = openapi_document()
    if check:
        if not output.exists() or output.read_text() != document:
            err.print(f"{output} is stale: run `onecard openapi`")
            raise typer.Exit(1)
        console.print(f"{output} is up to date")
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(document)
    console.print(f"wrote {output}")


# -- clients (relying parties) ------------------------------------------------------------

client_app = typer.Typer(help="Clients: portals and terminals.", no_args_is_help=True)
app.add_typer(client_app, name="client")


def _client_json(client: object, secret: str | None = None) -> dict:
    from onecard.api.schemas import ClientOut

    data = ClientOut.of(client).model_dump(mode="json")
    if secret is not None:
        data["client_secret"] = secret
    return data


@client_app.command("create")
def client_create(
    name: Annotated[str, typer.Option(help="Name citizens see on the consent page.")],
    client_type: Annotated[str, typer.Option("--type", help="confidential or public.")] = (
        "confidential"
    ),
    redirect_uri: Annotated[list[str] | None, typer.Option(help="Redirect URI (repeat).")] = None,
    post_logout_uri: Annotated[
        list[str] | None, typer.Option(help="Post-logout redirect URI (repeat).")
    ] = None,
    backchannel_logout_uri: Annotated[str | None, typer.Option()] = None,
    grant: Annotated[
        list[str] | None,
        typer.Option(help="authorization_code, refresh_token or client_credentials (repeat)."),
    ] = None,
    scope: Annotated[list[str] | None, typer.Option(help="Allowed scope (repeat).")] = None,
    auth_method: Annotated[
        str,
        typer.Option(help="client_secret_basic, client_secret_post, private_key_jwt or none."),
    ] = "client_secret_basic",
    jwks_file: Annotated[
        Path | None, typer.Option(help="Client JWK Set (private_key_jwt).")
    ] = None,
    jwks_uri: Annotated[str | None, typer.Option()] = None,
    subject_type: Annotated[str, typer.Option(help="public or pairwise.")] = "public",
    sector_identifier: Annotated[str | None, typer.Option()] = None,
    id_token_alg: Annotated[str, typer.Option(help="RS256 or ES256.")] = "RS256",  # noqa: S107
    min_level: Annotated[int, typer.Option(min=1, max=3)] = 1,
    full_identity_number: Annotated[bool, typer.Option()] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Register a client; its secret is printed once."""
    from onecard.identity.oidc.clients import ClientSpec, create_client

    default_grants = ["authorization_code", "refresh_token"]
    spec = ClientSpec(
        name=name,
        client_type=client_type,  # type: ignore[arg-type]
        auth_method=auth_method,  # type: ignore[arg-type]
        redirect_uris=tuple(redirect_uri or ()),
        post_logout_redirect_uris=tuple(post_logout_uri or ()),
        backchannel_logout_uri=backchannel_logout_uri,
        grant_types=tuple(grant or default_grants),  # type: ignore[arg-type]
        scopes=tuple(scope or ("openid",)),
        jwks=json.loads(jwks_file.read_text()) if jwks_file else None,
        jwks_uri=jwks_uri,
        subject_type=subject_type,  # type: ignore[arg-type]
        sector_identifier=sector_identifier,
        id_token_alg=id_token_alg,
        min_level=min_level,
        full_identity_number=full_identity_number,
    )
    with _session() as (_, session):
        client, secret = create_client(session, spec, actor=_actor())
        session.flush()
        data = _client_json(client, secret)
    if as_json:
        print(json.dumps(data, ensure_ascii=False))
        return
    _show(data)
    if secret:
        err.print("the client secret is shown once: store it now")


@client_app.command("list")
def client_list(limit: Annotated[int, typer.Option(min=1, max=1000)] = 100) -> None:
    """List clients."""
    from onecard.identity.oidc.clients import list_clients

    with _session() as (_, session):
        page = list_clients(session, limit=limit, cursor=None)
        for client in page.items:
            console.print(
                f"{client.client_id}  {client.status:8}  {client.client_type:12}  {client.name}",
                highlight=False,
            )


@client_app.command("show")
def client_show(client_id: str) -> None:
    """Show a client's registration."""
    from onecard.identity.oidc.clients import get_client

    with _session() as (_, session):
        _show(_client_json(get_client(session, client_id)))


@client_app.command("rotate-secret")
def client_rotate_secret(client_id: str) -> None:
    """Give a client a new secret (printed once); the old one stops working."""
    from onecard.identity.oidc.clients import get_client, rotate_secret

    with _session() as (_, session):
        secret = rotate_secret(session, get_client(session, client_id), actor=_actor())
    typer.echo(secret)


@client_app.command("disable")
def client_disable(client_id: str) -> None:
    """Disable a client: its tokens are refused and it can no longer sign citizens in."""
    from onecard.identity.oidc.clients import get_client, set_status
    from onecard.identity.oidc.models import ClientStatus

    with _session() as (_, session):
        set_status(session, get_client(session, client_id), ClientStatus.DISABLED, actor=_actor())
    console.print(f"disabled {client_id}")


@client_app.command("enable")
def client_enable(client_id: str) -> None:
    """Enable a disabled client again."""
    from onecard.identity.oidc.clients import get_client, set_status
    from onecard.identity.oidc.models import ClientStatus

    with _session() as (_, session):
        set_status(session, get_client(session, client_id), ClientStatus.ACTIVE, actor=_actor())
    console.print(f"enabled {client_id}")


# The CA's and the one-card's commands live in their own modules, which borrow this one's
# helpers.
from onecard.api.cli_ca import ca_app  # noqa: E402
from onecard.api.cli_card import card_app, terminal_app  # noqa: E402

app.add_typer(ca_app, name="ca")
app.add_typer(terminal_app, name="terminal")
app.add_typer(card_app, name="card")
