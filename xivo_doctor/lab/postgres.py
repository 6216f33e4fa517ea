"""The lab's PostgreSQL 15 clusters: one throwaway cluster, one database `asterisk_<N>` per node; or,
for nodes on their own network (`lab up --netns`), one cluster per node, database `asterisk`, on the
node's own 127.0.0.1:5432 as on a XiVO.

Place in the pipeline: none — the lab is the system being inspected (docs/lab.md "Database").
Built as LAB-NOTES §B proved it: initdb as the `postgres` user, its own socket directory (so the
system cluster's /var/run/postgresql lock is never taken), fsync off. Only clusters this module
created (marked by `<dir>/cluster.json`) are ever started or stopped; /var/lib/postgresql is
never touched. Tables and rows are those XiVO 16.x has (XIVO-FACTS §2, §6.1), filled as the
manual's procedure leaves them, per the node's release (`releases`): up to 15.20
`accesswebservice` has the web interface's serialized `obj` instead of `acl`; up to 16.12
`ctidirectories` names its directory by `uri`, from 16.13 by `directory_id`; phonebook sharing
rows only where both ends run 16.03-16.13.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import psycopg

from xivo_doctor.lab import releases

BIN = Path("/usr/lib/postgresql/15/bin")
SCHEMA = Path(__file__).with_name("schema.sql")
MARKER = "cluster.json"  # written by init(): "this cluster is the lab's"
SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off", "shared_buffers=16MB")


# util-linux's runuser lives in /usr/sbin, which a cron job's or `env -i` PATH may lack.
RUNUSER = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin") or "runuser"


def _as_postgres(*argv: str | Path, timeout: float = 60, enter: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
    # initdb and the postmaster refuse root (LAB-NOTES §B).
    cmd = [*enter, RUNUSER, "-u", "postgres", "--", *map(str, argv)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd="/")
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    return done


def _cluster(dir: Path) -> dict[str, object]:
    marker = Path(dir) / MARKER
    if not marker.is_file():
        raise RuntimeError(f"{dir} is not a lab cluster (no {MARKER}); refusing to touch it")
    return json.loads(marker.read_text())


def _superuser(dir: Path, dbname: str = "postgres") -> psycopg.Connection:
    info = _cluster(dir)
    return psycopg.connect(host=str(Path(dir) / "sock"), port=int(info["port"]), user="postgres",
                           dbname=dbname, autocommit=True, connect_timeout=5)


def password(dir: Path) -> str:
    return (Path(dir) / "asterisk.password").read_text().strip()


def init(dir: Path, address: str, port: int = 5432, clients: str = "127.0.0.0/8",
         enter: Sequence[str] = ()) -> None:
    """Create, configure and start a new cluster in `dir` listening on address:port, open (by password)
    to the `clients` network; create role asterisk. `enter`: the argv prefix onto a lab node's own
    network and files (`LabState.enter`), where the cluster then runs, as a XiVO's own."""
    dir = Path(dir).resolve()
    if (dir / "data").exists() or (dir / MARKER).exists():
        raise FileExistsError(f"{dir} already holds a cluster")
    sock = dir / "sock"
    if len(f"{sock}/.s.PGSQL.{port}") > 107:
        raise ValueError(f"socket path under {sock} is longer than a Unix socket allows")
    with socket.socket() as probe:
        probe.settimeout(0.5)
        if not enter and probe.connect_ex((address, port)) == 0:
            raise RuntimeError(f"{address}:{port} is already taken by a server the lab did not start")
    sock.mkdir(parents=True, exist_ok=True)
    for path in (dir, sock):
        shutil.chown(path, "postgres", "postgres")
    dir.chmod(0o750)
    if subprocess.run([RUNUSER, "-u", "postgres", "--", "test", "-w", str(dir)]).returncode:
        raise PermissionError(f"the postgres user cannot reach {dir}: make its parent directories traversable")
    _as_postgres(BIN / "initdb", "-D", dir / "data", "-U", "postgres", "--auth-local=trust",
                 "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
    settings = [f"listen_addresses = '{address}'", f"port = {port}", f"unix_socket_directories = '{sock}'"]
    settings += [s.replace("=", " = ", 1) for s in SETTINGS]
    with open(dir / "data" / "postgresql.conf", "a") as conf:
        conf.write("\n# xivo-doctor lab (LAB-NOTES §B)\n" + "\n".join(settings) + "\n")
    with open(dir / "data" / "pg_hba.conf", "a") as hba:
        # Clients bind the address of the XiVO they act for (docs/lab.md "Fidelity limits").
        hba.write(f"host all all {clients} scram-sha-256\n")
    (dir / MARKER).write_text(json.dumps({"address": address, "port": port, "enter": list(enter)}) + "\n")
    secret = dir / "asterisk.password"
    secret.touch(mode=0o600)
    secret.write_text(secrets.token_hex(16) + "\n")
    start(dir)
    with _superuser(dir) as conn:
        conn.execute(f"CREATE ROLE asterisk LOGIN PASSWORD '{password(dir)}'")


def pid(dir: Path) -> int | None:
    """The postmaster's pid if the cluster in `dir` runs, else None."""
    pidfile = Path(dir) / "data" / "postmaster.pid"
    try:
        number = int(pidfile.read_text().split("\n", 1)[0])
        cmdline = Path(f"/proc/{number}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return number if b"postgres" in cmdline else None


def is_running(dir: Path) -> bool:
    return pid(dir) is not None


def start(dir: Path) -> None:
    dir = Path(dir).resolve()
    _cluster(dir)
    if not is_running(dir):
        _as_postgres(BIN / "pg_ctl", "-D", dir / "data", "-l", dir / "server.log", "-w", "-t", "30", "start",
                     enter=list(_cluster(dir).get("enter") or []))


def stop(dir: Path) -> None:
    dir = Path(dir).resolve()
    _cluster(dir)
    if is_running(dir):
        _as_postgres(BIN / "pg_ctl", "-D", dir / "data", "-m", "fast", "-w", "-t", "30", "stop")


def dsn(dir: Path, index: int) -> str:
    """How a node's daemons reach its database: `postgresql://asterisk:<pw>@<address>:<port>/asterisk_<N>`."""
    info = _cluster(dir)
    return f"postgresql://asterisk:{password(dir)}@{info['address']}:{info['port']}/asterisk_{index}"


def own_dsns(dir: Path) -> tuple[str, str]:
    """A node's own cluster (`init(..., enter=...)`, database `asterisk`): the DSN of its daemons, on its
    localhost as XiVO's `db_uri`, and the one for this machine, through the cluster's Unix socket."""
    info = _cluster(dir)
    secret = password(dir)
    return (f"postgresql://asterisk:{secret}@localhost:{info['port']}/asterisk",
            f"postgresql://asterisk:{secret}@/asterisk?host={Path(dir).resolve() / 'sock'}&port={info['port']}")


# accesswebservice up to 15.20 (xivo-dao alchemy/accesswebservice.py@xivo-15.19): `obj text NOT NULL`
# (the web interface's PHP-serialized object, its ACL tree in obj['acl']), no `acl` column, and no
# default for `description`; 16.01 dropped `obj` and added `acl varchar[]` (manage-db 379ed6d9a62, 67ba595).
ACCESSWEBSERVICE_15 = ("ALTER TABLE accesswebservice DROP COLUMN acl, ADD COLUMN obj text NOT NULL, "
                       "ALTER COLUMN description DROP DEFAULT")


# ctidirectories up to 16.12: the directory is named by its URI string (confgend joins on
# `directories.uri = ctidirectories.uri`); 16.13 replaced it with `directory_id` (xivo-manage-db
# 15b236bd8060, xivo-dao 9bb84328; R2 §2).
CTIDIRECTORIES_URI = "ALTER TABLE ctidirectories DROP COLUMN directory_id, ADD COLUMN uri varchar(255)"


def create_node_database(dir: Path, index: int, *, replace: bool = False, version: str | None = None,
                         name: str = "") -> str:
    """Create database `asterisk_<index>` (or `name`) owned by asterisk with the lab schema (of
    `version`'s release, default 16.x); return its DSN (`dsn`; with `name`, "")."""
    name = name or f"asterisk_{int(index)}"
    with _superuser(dir) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            if not replace:
                raise FileExistsError(f"database {name} already exists")
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name} OWNER asterisk")
    with _superuser(dir, name) as conn:
        # XiVO's populate.sql makes UUIDs with uuid_generate_v4() (XIVO-FACTS §2): the manual's
        # regeneration of `infos.uuid` needs it too
        conn.execute('CREATE EXTENSION IF NOT EXISTS "uuid-ossp"')
        conn.execute("SET ROLE asterisk")  # the tables belong to asterisk, as on a XiVO
        conn.execute(SCHEMA.read_text())
        if version is not None and releases.accesswebservice_has_obj(version):
            conn.execute(ACCESSWEBSERVICE_15)
        if version is not None and not releases.ctidirectories_by_id(version):
            conn.execute(CTIDIRECTORIES_URI)
    return "" if name != f"asterisk_{int(index)}" else dsn(dir, index)


def _peer_suffix(name: str) -> str:
    # docs/lab.md names rows after the peer P: 'xivo-doctor-peer-P', 'xivo-P', 'phonebook-P'.
    return name.removeprefix("xivo-")


XIVO_FIELDS = {"name": "{firstname} {lastname}", "display_name": "{firstname} {lastname}", "phone": "{exten}",
               "phone_mobile": "{mobile_phone_number}", "voicemail": "{voicemail_number}"}  # XIVO-FACTS §6.1
PHONEBOOK_FIELDS = {"name": "{phonebook.firstname} {phonebook.lastname}", "display_name": "{phonebook.displayname}",
                    "phone": "{phonebooknumber.office.number}", "phone_mobile": "{phonebooknumber.mobile.number}",
                    "reverse": "{phonebook.society}"}  # dotted keys of the phonebook backend (XIVO-FACTS §6.2)


# populate.sql's default display (xivo-manage-db populate/populate.sql, same at 15.19 and 16.15)
DEFAULT_DISPLAY = ('{"10": [ "Nom","name","","name" ],"20": [ "Numéro","number","","phone" ], '
                   '"30": [ "Mobile","callable","","phone_mobile" ], "40": ["Boîte vocale", "voicemail", "", '
                   '"voicemail"], "50": ["Favoris", "favorite", "", "favorite"], "60": ["E-mail", "email", "", '
                   '"email"], "70": ["Personnel", "personal", "", ""]}')


# The web services user the doctor's directory-lookup check asks xivo-auth a token with (docs/lab.md
# "Database"): what it needs to look a peer's users up in xivo-dird (research-directory-lookup.md §2.1,
# §5.3), as an admin adds it in Configuration → Management → Web Services Access.
LOOKUP_USER = {"name": "xivo-doctor-lookup", "login": "xivo-doctor",
               "acl": ("dird.directories.lookup.*.read", "confd.users.read")}
# populate.sql's `ctimain` row keeps context_separation 0 (VALUES(DEFAULT, ..., 0, 1) at xivo-15.19 and
# xivo-16.13: its last-but-one column), and `ctireversedirectories` '["xivodir"]' up to 16.13, which an
# upgraded XiVO keeps (16.14 stopped inserting it; xivo-manage-db populate/populate.sql, 9e2fb9d)
REVERSE_DIRECTORIES = '["xivodir"]'


def _insert_lookup_user(cur, with_obj: bool, password: str) -> None:
    # no host, so it authorises no address
    if with_obj:  # <= 15.20: no `acl` column; the web interface's `obj` '' grants no json.php ACL
        cur.execute("INSERT INTO accesswebservice (name, login, passwd, host, obj, description, disable)"
                    " VALUES (%s, %s, %s, NULL, '', '', 0)", (LOOKUP_USER["name"], LOOKUP_USER["login"], password))
    else:
        cur.execute("INSERT INTO accesswebservice (name, login, passwd, host, acl, disable)"
                    " VALUES (%s, %s, %s, NULL, %s, 0)",
                    (LOOKUP_USER["name"], LOOKUP_USER["login"], password, list(LOOKUP_USER["acl"])))


def add_missing_lookup_user(dsn: str, *, version: str, password: str) -> bool:
    """Write the doctor's web services user (`LOOKUP_USER`) on a node whose database predates it (a lab
    made by an older `lab up`); a row with its login, even one a fault changed, is left as it is.
    True when the row was added."""
    with psycopg.connect(dsn, connect_timeout=5) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 FROM accesswebservice WHERE login = %s", (LOOKUP_USER["login"],))
        if cur.fetchone():
            return False
        _insert_lookup_user(cur, releases.accesswebservice_has_obj(version), password)
        return True


def fill_node(dsn: str, *, uuid: str, node_address: str, peers: Sequence[tuple[str, ...]], version: str,
              lookup_password: str | None = None) -> None:
    """The rows the manual's procedure leaves on a node (docs/lab.md "Database"), plus users and contacts.

    `peers` are (name, address) or (name, address, version); a peer's version defaults to the node's.
    The web-service user authorising each peer by host is there at every release (Contact and
    Presence Sharing's "Add a Web Service User"); a `phonebook` directory toward a peer only when
    both run a release with Phonebook Sharing (16.03-16.13, `releases.phonebook_sharing`).
    `lookup_password`: the doctor's own web services user (`LOOKUP_USER`, no host) with that password;
    None leaves it out."""
    octet = node_address.rsplit(".", 1)[-1]
    with_obj = releases.accesswebservice_has_obj(version)
    by_id = releases.ctidirectories_by_id(version)
    with psycopg.connect(dsn, connect_timeout=5) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO infos (uuid) VALUES (%s)", (uuid,))
        # The default internal source of populate.sql (XIVO-FACTS §6.1).
        sources = [("internal", "http://localhost:9487", "xivo", "xivo", "XiVO internal users", XIVO_FIELDS)]
        for name, address, *rest in peers:
            p = _peer_suffix(name)
            # 15.x: the web interface adds a user with `obj` '' and no ACL (the ACL is a separate page)
            cur.execute("INSERT INTO accesswebservice (name, login, passwd, host, "
                        + ("obj, description, disable) VALUES (%s, NULL, NULL, %s, '', '', 0)" if with_obj
                           else "acl, disable) VALUES (%s, NULL, NULL, %s, '{}', 0)"),
                        (f"xivo-doctor-peer-{p}", address))
            sources.append((f"xivo-{p}", f"https://{address}:9486", "xivo", f"xivo-{p}", f"XiVO {name}", XIVO_FIELDS))
            peer_version = rest[0] if rest else version
            if releases.phonebook_sharing(version) and releases.phonebook_sharing(peer_version):
                uri = f"http://{address}/service/ipbx/json.php/restricted/pbx_services/phonebook"
                sources.append((f"phonebook-{p}", uri, "phonebook", f"phonebook-{p}", f"Phonebook of {name}",
                                PHONEBOOK_FIELDS))
        if lookup_password is not None:  # after the peers' rows (their ids stay 1..N)
            _insert_lookup_user(cur, with_obj, lookup_password)
        for ctiname, uri, dirtype, dirname, description, fields in sources:
            cur.execute("INSERT INTO directories (uri, dirtype, name, description, xivo_verify_certificate)"
                        " VALUES (%s, %s, %s, %s, false) RETURNING id", (uri, dirtype, dirname, description))
            directory_id = cur.fetchone()[0]
            if dirtype == "phonebook":
                direct, reverse = '["phonebook.firstname","phonebook.lastname","phonebook.displayname"]', \
                    '["phonebooknumber.office.number","phonebooknumber.mobile.number"]'
            else:
                direct, reverse = '["firstname","lastname"]', '["exten"]'
            link = ("directory_id", directory_id) if by_id else ("uri", uri)
            cur.execute("INSERT INTO ctidirectories (name, delimiter, match_direct, match_reverse, description,"
                        f" deletable, {link[0]}) VALUES (%s, '', %s, %s, %s, 1, %s) RETURNING id",
                        (ctiname, direct, reverse, description, link[1]))
            ctidir_id = cur.fetchone()[0]
            cur.executemany("INSERT INTO ctidirectoryfields (dir_id, fieldname, value) VALUES (%s, %s, %s)",
                            [(ctidir_id, key, value) for key, value in fields.items()])
        cur.execute("INSERT INTO cticontexts (name, directories, display, description, deletable)"
                    " VALUES ('default', %s, 'Display', 'Default profile', 1)", (",".join(s[0] for s in sources),))
        cur.execute("INSERT INTO ctidisplays (name, data, deletable, description) VALUES ('Display', %s, 1, %s)",
                    (DEFAULT_DISPLAY, "Affichage par défaut"))
        cur.execute("INSERT INTO ctimain (ctis_active, tlscertfile, tlsprivkeyfile, context_separation,"
                    " live_reload_conf) VALUES (1, '', '', 0, 1)")
        cur.execute("INSERT INTO ctireversedirectories (directories) VALUES (%s)", (REVERSE_DIRECTORIES,))
        for i, first in enumerate(("Alice", "Bob", "Carol"), 1):
            cur.execute("INSERT INTO userfeatures (uuid, firstname, lastname, email, mobilephonenumber, userfield,"
                        " description, exten, context)"
                        " VALUES (gen_random_uuid(), %s, %s, %s, %s, %s, %s, %s, 'default')",
                        (first, f"Lab{octet}", f"{first.lower()}@xivo-{octet}.lab", f"06{octet:0>4}{i:04d}",
                         node_address, f"user of the XiVO at {node_address}", f"{octet}{i:03d}"))
        for i, (first, last, society) in enumerate((("Dave", "Supplier", "Acme"), ("Erin", "Customer", "Globex")), 1):
            cur.execute("INSERT INTO phonebook (title, firstname, lastname, displayname, society, email, description)"
                        " VALUES ('mr', %s, %s, %s, %s, %s, %s) RETURNING id",
                        (first, f"{last}{octet}", f"{first} {last}{octet}", f"{society} {octet}",
                         f"{first.lower()}@{society.lower()}.example", f"contact of the XiVO at {node_address}"))
            entry = cur.fetchone()[0]
            cur.executemany("INSERT INTO phonebooknumber (phonebookid, number, type) VALUES (%s, %s, %s)",
                            [(entry, f"01{octet:0>4}{i:04d}", "office"), (entry, f"07{octet:0>4}{i:04d}", "mobile")])
            cur.execute("INSERT INTO phonebookaddress (phonebookid, address1, city, zipcode, country, type)"
                        " VALUES (%s, %s, 'Quebec', 'G1K 3A1', 'CA', 'office')", (entry, f"{i} rue du Lab"))


def psql(dsn_or_db: str, sql: str | None = None, *,
         cluster: Path | None = None) -> tuple[list[str], dict[str, str]]:
    """(argv, env) running psql as asterisk on a node's database: a DSN, or a database name with `cluster`.

    The password goes in PGPASSWORD, never in argv. Without `sql` the argv opens a session (append
    psql arguments to it, as `lab exec NODE -- psql ...` does).
    """
    if "://" in dsn_or_db:
        parts = urlsplit(dsn_or_db)
        user, secret = unquote(parts.username or "asterisk"), unquote(parts.password or "")
        options = parse_qs(parts.query)  # a Unix socket: postgresql://user:pw@/db?host=/folder&port=5432
        host = parts.hostname or options.get("host", ["127.0.0.1"])[0]
        port, dbname = parts.port or int(options.get("port", ["5432"])[0]), parts.path.lstrip("/")
    elif cluster is not None:
        info = _cluster(cluster)
        user, secret, host, port, dbname = "asterisk", password(cluster), info["address"], info["port"], dsn_or_db
    else:
        raise ValueError("psql needs a DSN, or a database name and the cluster directory")
    argv = [str(BIN / "psql"), "-X", "-v", "ON_ERROR_STOP=1",
            "-h", str(host), "-p", str(port), "-U", user, "-d", dbname]
    if sql is not None:
        argv += ["-c", sql]
    return argv, dict(os.environ, PGPASSWORD=secret, PGCONNECT_TIMEOUT="5")
