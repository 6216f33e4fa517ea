"""On-box data sources of a XiVO: its `asterisk` database and the files under `on_box.root`.

Place in the pipeline: acquisition. What only a process on the XiVO (or with its database DSN)
can read: `infos.uuid`, the directory tables (XIVO-FACTS §2, §6.1), the XIVO_UUID files that
`xivo-configure-uuid` writes (§2) and the version file. Every read goes through the run's
deadline and is cached per run; the database is read over ONE read-only connection per XiVO.
Absence of on-box access is not an error here: `has_database` / `has_root` let the checks say
`cannot_check_from_here`. A source that is configured but cannot be read raises `ProbeError`.

The DSN holds a password: it never appears in a message or a returned value; the source is
named "asterisk database of <xivo>". Passwords of the tables are never returned either: a web
services user's `passwd` becomes `password_set`, a directory's `xivo_password` a `Secret`.

psycopg (~65 ms to import) is imported where a database is read, not with this module: the
checks import its constants (VERSION_FILE, XIVO_UUID_FILES), and `checks`, `--version` or a run
from afar (no on_box.database) read no database.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xivo_doctor.foundation.errors import ProbeError, ProbeTimeout
from xivo_doctor.topology.model import Secret, Xivo
from xivo_doctor.xivo.uuid_files import XIVO_UUID_FILES, uuid_in

VERSION_FILE = "/usr/share/xivo/XIVO-VERSION"
MASTER_TOKEN_FILE = "/var/lib/consul/master_token"  # mode 600, written by XiVO's consul package (XIVO-FACTS §4)
# Read together over SSH, in one command, at the first file a run reads on a XiVO
SMALL_FILES = (VERSION_FILE, *XIVO_UUID_FILES, MASTER_TOKEN_FILE)
MAX_FILE_BYTES = 1_000_000
PSQL_TIMEOUT = 10.0  # s: one psql over SSH reads every table

# Columns of XIVO-FACTS §6.1. `SELECT *` and picking: a XiVO older than a column still answers.
DIRECTORY_COLUMNS = ("id", "uri", "dirtype", "name", "description", "xivo_username", "xivo_password",
                     "xivo_verify_certificate", "xivo_custom_ca_path", "dird_tenant", "dird_phonebook",
                     "ldapfilter_id")
# `uri` up to 16.12, `directory_id` from 16.13 (xivo-manage-db migration 15b236bd8060@xivo-16.13): only the
# columns the table has are returned, so that a check joins definitions as that release's confgend does.
CTIDIRECTORY_COLUMNS = ("id", "name", "uri", "delimiter", "match_direct", "match_reverse", "description",
                        "deletable", "directory_id")
CTICONTEXT_COLUMNS = ("id", "name", "directories", "display", "description", "deletable")
CTIDISPLAY_COLUMNS = ("id", "name", "data", "deletable", "description")
WEBSERVICE_COLUMNS = ("id", "name", "login", "host", "acl", "disable", "description")
QUERIES = {
    "infos": "SELECT uuid FROM infos",
    "directories": "SELECT * FROM directories ORDER BY id",
    "ctidirectories": "SELECT * FROM ctidirectories ORDER BY id",
    "cticontexts": "SELECT * FROM cticontexts ORDER BY id",
    "ctidisplays": "SELECT * FROM ctidisplays ORDER BY id",
    "accesswebservice": "SELECT * FROM accesswebservice ORDER BY id",
    # someone for directory-lookup to look up: named columns only (userfeatures holds CTI passwords)
    "users": "SELECT id, uuid, firstname, lastname FROM userfeatures ORDER BY id LIMIT 50",
    "phonebook": "SELECT id, firstname, lastname, displayname, society FROM phonebook ORDER BY id LIMIT 50",
}


def __getattr__(name: str) -> Any:
    """`onbox.psycopg`, imported on first use like everywhere in this module (PEP 562): what it
    patches (a test counting connections) is the psycopg module `_read` uses."""
    if name == "psycopg":
        import psycopg

        return psycopg
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_VERSION = re.compile(r"^\d+(\.\d+)+$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@dataclass(frozen=True)
class UuidReading:
    """The XiVO's UUID as one source holds it.

    `uuid` None with `unavailable` None: the source was read and holds no UUID (a finding).
    `unavailable` set: the source could not be read, or has nothing to compare (not a finding).
    """

    source: str
    kind: str  # "database" | "file" | "ctid" | "consul"
    uuid: str | None = None
    unavailable: str | None = None

    def shown(self) -> str:
        if self.unavailable is not None:
            return f"not read: {self.unavailable}"
        return self.uuid if self.uuid is not None else "(no UUID there)"


class OnBoxProbe:
    def __init__(self, probes: Any) -> None:
        self.probes = probes

    # -- what access the topology gives --------------------------------------------------------
    @staticmethod
    def has_database(xivo: Xivo) -> bool:
        """On the XiVO (on_box.database), or over SSH (psql as the postgres user, as an admin reads it)."""
        return (xivo.on_box is not None and bool(xivo.on_box.database)) or xivo.ssh is not None

    @staticmethod
    def has_root(xivo: Xivo) -> bool:
        return xivo.on_box is not None or xivo.ssh is not None

    @staticmethod
    def database_source(xivo: Xivo) -> str:
        return f"asterisk database of {xivo.name}"

    # -- the asterisk database -----------------------------------------------------------------
    def infos_uuid(self, xivo: Xivo) -> str | None:
        """`SELECT uuid FROM infos` (one row on a XiVO; None when the table is empty)."""
        rows = self._table(xivo, "infos")
        return str(rows[0]["uuid"]).strip() if rows else None

    def directories(self, xivo: Xivo) -> list[dict[str, Any]]:
        """Configuration → Management → Directories; `xivo_password` as a `Secret` (or None)."""
        out = []
        for row in self._table(xivo, "directories"):
            item = {c: row.get(c) for c in DIRECTORY_COLUMNS}
            item["xivo_password"] = Secret(row["xivo_password"]) if row.get("xivo_password") else None
            out.append(item)
        return out

    def ctidirectories(self, xivo: Xivo) -> list[dict[str, Any]]:
        """Services → CTI Server → Directories → Definitions; only the columns the table has."""
        return [{c: row[c] for c in CTIDIRECTORY_COLUMNS if c in row} for row in self._table(xivo, "ctidirectories")]

    def cticontexts(self, xivo: Xivo) -> list[dict[str, Any]]:
        """Direct directories, one row per context; `directory_names` splits the comma list as
        xivo-dao does, names NOT stripped (`directories.split(',') if directories else []`:
        xivo_dao/cti_displays_dao.py@xivo-15.19..16.15): " xivo-1" is not the definition "xivo-1"."""
        out = []
        for row in self._table(xivo, "cticontexts"):
            item = {c: row.get(c) for c in CTICONTEXT_COLUMNS}
            item["directory_names"] = row["directories"].split(",") if row.get("directories") else []
            out.append(item)
        return out

    def ctidisplays(self, xivo: Xivo) -> list[dict[str, Any]]:
        """Services → CTI Server → Directories → Display filters: a context gives a profile only when its
        `display` names one of these (xivo-dao cti_displays_dao.py, inner join)."""
        return [{c: row.get(c) for c in CTIDISPLAY_COLUMNS} for row in self._table(xivo, "ctidisplays")]

    def webservice_users(self, xivo: Xivo) -> list[dict[str, Any]]:
        """Configuration → Management → Web Services Access; never the password, only whether set."""
        out = []
        for row in self._table(xivo, "accesswebservice"):
            item = {c: row.get(c) for c in WEBSERVICE_COLUMNS}
            item["password_set"] = bool(row.get("passwd"))
            out.append(item)
        return out

    def users(self, xivo: Xivo) -> list[dict[str, Any]]:
        """The first users (id, uuid, firstname, lastname): what xivo-confd's /1.1/users serves of them."""
        return self._table(xivo, "users")

    def phonebook_entries(self, xivo: Xivo) -> list[dict[str, Any]]:
        """The first entries of the json.php phonebook (the `phonebook` table, up to 16.13)."""
        return self._table(xivo, "phonebook")

    def _table(self, xivo: Xivo, name: str) -> list[dict[str, Any]]:
        if not self.has_database(xivo):
            raise ProbeError(self.database_source(xivo), "no on_box.database in the topology")
        tables = self.probes.cached(("onbox-db", xivo.name), lambda: self._read(xivo))
        found = tables[name]
        if isinstance(found, ProbeError):
            raise found
        return found

    def _read(self, xivo: Xivo) -> dict[str, list[dict[str, Any]] | ProbeError]:
        """Every table the checks use, over one read-only connection (they are small): on-box with
        on_box.database, else over SSH (has_database said one of them is there; on a XiVO with on-box
        access to its files but no database DSN given, the topology's ssh reads it as for any other)."""
        if xivo.on_box is None or xivo.on_box.database is None:
            return self._read_over_ssh(xivo)
        import psycopg
        from psycopg.rows import dict_row

        source = self.database_source(xivo)
        assert xivo.on_box is not None and xivo.on_box.database is not None
        dsn = xivo.on_box.database.reveal()
        budget = self.probes.deadline.budget(self.probes.timeout, source)
        try:
            # libpq counts connect_timeout in whole seconds, at least 2 (psycopg follows it).
            conn = psycopg.connect(dsn, connect_timeout=max(1, math.ceil(budget)), autocommit=True,
                                   row_factory=dict_row)
        except psycopg.Error as exc:
            raise _db_error(source, exc, dsn, budget) from None
        tables: dict[str, list[dict[str, Any]] | ProbeError] = {}
        with conn:
            try:
                conn.execute("SET default_transaction_read_only = on")  # the doctor never writes
                conn.execute(f"SET statement_timeout = {max(1, int(budget * 1000))}")
            except psycopg.Error as exc:
                raise _db_error(source, exc, dsn, budget) from None
            for name, sql in QUERIES.items():
                self.probes.deadline.budget(self.probes.timeout, source)
                try:
                    tables[name] = conn.execute(sql).fetchall()
                except psycopg.errors.QueryCanceled:
                    raise ProbeTimeout(source, f"{name}: timed out after {budget:g} s") from None
                except psycopg.OperationalError as exc:
                    raise _db_error(source, exc, dsn, budget) from None
                except psycopg.Error as exc:  # a missing table or column: that table only
                    tables[name] = ProbeError(source, f"reading {name}: {_clean(exc, dsn)}")
        return tables

    def _read_over_ssh(self, xivo: Xivo) -> dict[str, list[dict[str, Any]] | ProbeError]:
        """The same tables through one `sudo -u postgres psql asterisk` over SSH, as an admin reads them
        on a XiVO, read-only: each table's name on a line, then its rows as one JSON line (no line
        when that table could not be read: a missing table or column, that table only)."""
        source = self.database_source(xivo) + " (over SSH)"
        argv = ["sudo", "-u", "postgres", "psql", "-X", "-q", "-A", "-t", "asterisk",
                "-c", "SET default_transaction_read_only = on",
                "-c", f"SET statement_timeout = {max(1, int(self.probes.timeout * 1000))}"]
        for name, sql in QUERIES.items():
            # array_to_json: one line per table (json_agg breaks lines between rows)
            argv += ["-c", f"SELECT '#{name}'",
                     "-c", f"SELECT coalesce(array_to_json(array_agg(t)), '[]') FROM ({sql}) t"]
        # psql's start-up, sudo's and the SSH channel's: a few hundred ms on a XiVO, more than a TCP connect
        ran = self.probes.ssh.run(xivo, argv, what="psql asterisk", max_bytes=16 * MAX_FILE_BYTES,
                                  timeout=max(self.probes.timeout, PSQL_TIMEOUT))
        if ran.truncated:
            raise ProbeError(source, f"more than {16 * MAX_FILE_BYTES} bytes of tables; not read")
        lines = (ran.output or "").splitlines()
        if ran.exit_code != 0 or not any(line.startswith("#") for line in lines):
            raise ProbeError(source, (ran.errors.strip().splitlines() or [ran.problem or "no answer"])[-1])
        tables: dict[str, list[dict[str, Any]] | ProbeError] = {}
        for at, line in enumerate(lines):
            if line.startswith("#") and line[1:] in QUERIES:
                name, following = line[1:], lines[at + 1] if at + 1 < len(lines) else ""
                try:
                    rows = json.loads(following) if following and not following.startswith("#") else None
                except ValueError:
                    rows = None
                tables[name] = rows if isinstance(rows, list) else ProbeError(
                    source, f"reading {name}: {_psql_error(ran.errors, name)}")
        return tables

    # -- files under on_box.root ---------------------------------------------------------------
    def xivo_uuid_files(self, xivo: Xivo) -> dict[str, str | None]:
        """XIVO_UUID in each file xivo-configure-uuid writes; None: file missing or no XIVO_UUID in it."""
        return self.probes.cached(("onbox-uuid-files", xivo.name), lambda: {
            path: uuid_in(path, self.read_file(xivo, path)) for path in XIVO_UUID_FILES
        })

    def version_file(self, xivo: Xivo) -> str | None:
        """The version in /usr/share/xivo/XIVO-VERSION (e.g. "16.13"), None when the file is absent."""
        def read() -> str | None:
            text = self.read_file(xivo, VERSION_FILE)
            if text is None:
                return None
            value = (text.strip().splitlines() or [""])[0].strip()
            if not _VERSION.match(value):
                raise ProbeError(f"{VERSION_FILE} of {xivo.name}", f"holds {value[:40]!r}, not a version")
            return value

        return self.probes.cached(("onbox-version", xivo.name), read)

    def file_at(self, xivo: Xivo, path: str) -> str | None:
        """Where the XiVO's file `path` is read from here (under on_box.root), when it exists and can be
        read; None when it is absent. ProbeError without on-box root or when it cannot be read."""
        def find() -> str | None:
            text = self.read_file(xivo, path)
            if text is None:
                return None
            if xivo.over_ssh:  # a copy here, for what needs a local file (a CA file to verify with)
                return str(self.probes.ssh.keep_copy(xivo, path, text))
            assert xivo.on_box is not None
            return str(Path(xivo.on_box.root) / path.lstrip("/"))

        return self.probes.cached(("onbox-file", xivo.name, path), find)

    def read_file(self, xivo: Xivo, path: str) -> str | None:
        """The text of the XiVO's file `path`, under on_box.root or over SSH; None when it does not
        exist. ProbeError without on-box access, or when it cannot be read."""
        source = f"{path} of {xivo.name}"
        if not self.has_root(xivo):
            raise ProbeError(source, "no on_box in the topology")
        self.probes.deadline.budget(self.probes.timeout, source)
        if xivo.over_ssh:
            self.probes.ssh.read_files(xivo, SMALL_FILES, MAX_FILE_BYTES)  # once per XiVO and run
            return self.probes.ssh.read_file(xivo, path, MAX_FILE_BYTES)
        assert xivo.on_box is not None
        real = Path(xivo.on_box.root) / path.lstrip("/")
        try:
            with open(real, "rb") as file:
                data = file.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ProbeError(source, f"cannot read: {exc.strerror or type(exc).__name__}") from None
        if len(data) > MAX_FILE_BYTES:
            raise ProbeError(source, f"larger than {MAX_FILE_BYTES} bytes; not read")
        return data.decode("utf-8", "replace")

    # -- the UUID as every source holds it -----------------------------------------------------
    def uuid_readings(self, xivo: Xivo) -> list[UuidReading]:
        """The XiVO's UUID from each source: `infos.uuid` (what xivo-confd serves), the XIVO_UUID
        files (what the daemons get), xivo-ctid's /0.1/infos and the tag of the xivo-ctid service
        in the XiVO's Consul (XIVO-FACTS §2, §3). Gathered here, on-box and remote together, so a
        source out of reach is kept with its reason instead of hiding the others; raises
        ProbeError only when not one source could be read."""
        return self.probes.cached(("uuid-readings", xivo.name), lambda: self._uuid_readings(xivo))

    def _uuid_readings(self, xivo: Xivo) -> list[UuidReading]:
        readings: list[UuidReading] = []
        db_label = f"infos.uuid ({self.database_source(xivo)})"
        if self.has_database(xivo):
            readings.append(_attempt(db_label, "database", lambda: self.infos_uuid(xivo)))
        else:
            readings.append(UuidReading(db_label, "database", unavailable="no on_box.database in the topology"))
        if self.has_root(xivo):
            try:
                files = self.xivo_uuid_files(xivo)
            except ProbeError as exc:
                readings += [UuidReading(p, "file", unavailable=exc.detail) for p in XIVO_UUID_FILES]
            else:
                readings += [UuidReading(path, "file", uuid) for path, uuid in files.items()]
        ctid_label = f"xivo-ctid /0.1/infos (http://{xivo.address}:{xivo.ctid.port})"
        readings.append(_attempt(ctid_label, "ctid", lambda: (self.probes.ctid.infos(xivo) or {}).get("uuid")))
        readings += self._consul_readings(xivo)
        if all(r.unavailable is not None for r in readings):
            reasons = "; ".join(f"{r.source}: {r.unavailable}" for r in readings)
            raise ProbeError(f"UUID of {xivo.name}", f"no source could be read ({reasons})")
        return readings

    def _consul_readings(self, xivo: Xivo) -> list[UuidReading]:
        label = f"tag of the xivo-ctid service in {xivo.name}'s Consul"
        try:
            services = self.probes.consul.agent_services(xivo) or {}
        except ProbeError as exc:
            return [UuidReading(label, "consul", unavailable=str(exc))]
        # xivo-ctid registers with Tags [<XIVO_UUID>, "xivo-ctid"] + extra_tags (XIVO-FACTS §3).
        ctids = [s for s in services.values() if isinstance(s, dict) and s.get("Service") == "xivo-ctid"]
        if not ctids:
            return [UuidReading(label, "consul", unavailable="no xivo-ctid service registered")]
        out = []
        for service in ctids:
            tags = [t for t in service.get("Tags") or [] if isinstance(t, str) and _UUID.match(t)]
            name = f"{label} (id {service.get('ID')})" if len(ctids) > 1 else label
            out.append(UuidReading(name, "consul", tags[0] if tags else None))
        return out


def _psql_error(errors: str, name: str) -> str:
    """psql's own words about table `name`, else the last error it printed."""
    lines = [line.strip() for line in errors.splitlines() if line.strip()]
    return next((line for line in lines if name in line), lines[-1] if lines else "not read")


def _attempt(source: str, kind: str, read) -> UuidReading:
    try:
        value = read()
    except ProbeError as exc:
        return UuidReading(source, kind, unavailable=str(exc))
    return UuidReading(source, kind, str(value).strip() if value else None)


def _clean(exc: BaseException, dsn: str) -> str:
    """psycopg's message on one line, with neither the DSN nor its password."""
    import psycopg

    text = " ".join(str(exc).split())
    secrets = [dsn]
    try:
        password = psycopg.conninfo.conninfo_to_dict(dsn).get("password")
    except psycopg.Error:
        password = None
    if password:
        secrets.append(str(password))
    for secret in secrets:
        text = text.replace(secret, "********")
    return text or type(exc).__name__


def _db_error(source: str, exc: BaseException, dsn: str, budget: float) -> ProbeError:
    text = _clean(exc, dsn)
    if "timeout" in text.lower():
        return ProbeTimeout(source, f"timed out after {max(2, math.ceil(budget))} s: {text}")
    return ProbeError(source, text)
