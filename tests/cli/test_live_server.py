"""The CLI against a live server process on loopback, whose in-process runners
execute the requests: submit a scan and watch it, read the results as CSV,
download the archives, cancel, and see refusals with the server's message.

The server keeps its own SQLite database in a temporary folder (the worker
test covers PostgreSQL)."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import REPO
from tests.servers import free_port, wait_for_server

pytestmark = pytest.mark.slow
RECAST = str(Path(sys.executable).with_name("recast"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    var = tmp_path_factory.mktemp("server")
    env = {
        key: value
        for key, value in os.environ.items()
        if key
        not in ("DATABASE_URL", "CELERY_BROKER_URL", "RECAST_URL", "RECAST_TOKEN")
    }
    env.update(
        RECAST_VAR_DIR=str(var),
        RECAST_ENVS_DIR=str(settings.RECAST_ENVS_DIR),
        XDG_CONFIG_HOME=str(var),
    )
    manage = [sys.executable, str(REPO / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True)
    subprocess.run(
        [*manage, "catalogue_load"], env=env, check=True, capture_output=True
    )
    token = subprocess.run(
        [*manage, "create_token", "alice"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()

    port = free_port()
    log = (var / "server.log").open("wb")
    process = subprocess.Popen(
        [RECAST, "serve", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for_server(url, process, var / "server.log")
    yield {**env, "RECAST_URL": url, "RECAST_TOKEN": token}
    process.terminate()
    process.wait(timeout=30)
    log.close()


def recast(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [RECAST, *args], env=env, capture_output=True, text=True, timeout=900
    )


def test_a_scan_submitted_and_watched_from_the_cli_ends_with_its_results(
    server: dict[str, str], tmp_path: Path
) -> None:
    watched = recast(
        server, "submit", "demo-stop-1l", "--scan", "stop_45*_1*", "--watch", "--json"
    )
    request = json.loads(watched.stdout)
    as_csv = recast(server, "results", request["id"], "--format", "csv")
    downloaded = recast(server, "download", request["id"], "--output", str(tmp_path))
    assert downloaded.returncode == 0, downloaded.stderr

    assert watched.returncode == 0, watched.stderr
    assert request["status"] == "succeeded"
    assert "all points" in watched.stderr
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [(r["point"], r["m_stop"], r["status"]) for r in rows] == [
        ("stop_450_100", "450", "succeeded")
    ]
    assert float(rows[0]["mu_up_obs"]) > 0
    exported = recast(
        server,
        "export",
        request["id"],
        "--to",
        "hepdata",
        "--output",
        str(tmp_path / "hepdata"),
    )
    assert exported.returncode == 0, exported.stderr
    assert (tmp_path / "hepdata" / "submission.yaml").exists()
    archives = sorted(tmp_path.glob("stop_*.tar.gz"))
    assert len(archives) == 1
    assert (tmp_path / f"request-{request['id']}.tar.gz").exists()
    with tarfile.open(archives[0]) as tar:
        assert any(name.endswith("/manifest.json") for name in tar.getnames())


def test_cancel_from_the_cli(server: dict[str, str]) -> None:
    request_id = recast(
        server, "submit", "demo-stop-1l", "--scan", "stop_*"
    ).stdout.strip()

    cancelled = recast(server, "cancel", request_id)
    status = recast(server, "status", request_id)

    assert cancelled.returncode == 0
    assert status.stdout.startswith(f"request {request_id} on demo-stop-1l: cancelled")


def test_a_refused_submission_shows_the_servers_message_and_exits_2(
    server: dict[str, str],
) -> None:
    refused = recast(server, "submit", "demo-stop-1l", "--patch", "stop_1_1")

    assert refused.returncode == 2
    assert refused.stderr.startswith(
        "error: $.patch: no patch named 'stop_1_1' in the patchset of 'demo-stop-1l'"
    )
    assert "Traceback" not in refused.stderr


def test_event_files_are_submitted_from_the_cli_as_a_list_of_files(
    server: dict[str, str],
) -> None:
    example = REPO / "workflows" / "demo-dilepton-events" / "example"
    files = [f"signals=@{example / f'zprime_1500_{part}.root'}" for part in "ab"]
    args = ["submit", "demo-dilepton-events", "--input", files[0], "--input", files[1]]

    refused = recast(server, *args, "--input", "cross_section_fb=-1")
    created = recast(server, *args, "--input", "cross_section_fb=0.04", "--json")
    recast(server, "cancel", json.loads(created.stdout)["id"])

    assert (refused.returncode, refused.stderr.strip()) == (
        2,
        "error: inputs: $.cross_section_fb: -1 is less than or equal to the "
        "minimum of 0",
    )
    assert created.returncode == 0, created.stderr
    [run] = json.loads(created.stdout)["runs"]
    assert run["point"] == "zprime_1500_a"
    assert len(run["inputs"]["signals"]) == 2
    assert run["inputs"]["cross_section_fb"] == 0.04


def test_a_bad_token_is_refused_with_exit_2(server: dict[str, str]) -> None:
    refused = recast({**server, "RECAST_TOKEN": "rc_000000000000_nope"}, "status", "x")

    assert (refused.returncode, refused.stderr.strip()) == (
        2,
        "error: the token is unknown, expired or revoked",
    )


def test_login_writes_a_private_config_file(
    server: dict[str, str], tmp_path: Path
) -> None:
    env = {k: v for k, v in server.items() if k not in ("RECAST_URL", "RECAST_TOKEN")}
    env["XDG_CONFIG_HOME"] = str(tmp_path)

    logged = recast(
        env, "login", "--url", server["RECAST_URL"], "--token", server["RECAST_TOKEN"]
    )
    listed = recast(env, "catalogue", "ls", "--json")

    config = tmp_path / "recast" / "config.json"
    assert logged.returncode == 0, logged.stderr
    assert config.stat().st_mode & 0o777 == 0o600
    assert '"slug": "demo-stop-1l"' in listed.stdout


CREDENTIAL = "xrootd-token-Hk3Jd8Qp"  # made up


def test_credentials_are_added_listed_used_and_removed_from_the_cli(
    server: dict[str, str], tmp_path: Path
) -> None:
    value_file = tmp_path / "token"
    value_file.write_text(CREDENTIAL + "\n")

    added = recast(server, "credentials", "add", "eos", "--value-file", str(value_file))
    listed = recast(server, "credentials", "ls", "--json")
    used = recast(
        server,
        "submit",
        "demo-stop-1l",
        "--patch",
        "stop_450_100",
        "--json",
        "--credential",
        "eos",
    )
    unknown = recast(
        server,
        "submit",
        "demo-stop-1l",
        "--patch",
        "stop_450_100",
        "--credential",
        "nope",
    )
    removed = recast(server, "credentials", "rm", "eos")
    again = recast(server, "credentials", "rm", "eos")

    assert (added.returncode, added.stderr) == (0, "credential eos stored\n")
    assert [c["name"] for c in json.loads(listed.stdout)] == ["eos"]
    assert CREDENTIAL not in listed.stdout + used.stdout
    assert used.returncode == 0, used.stderr
    recast(server, "cancel", json.loads(used.stdout)["id"])
    assert (unknown.returncode, unknown.stderr.splitlines()[0]) == (
        2,
        "error: $.credentials[0]: you have no credential named 'nope' (add it "
        "with `recast credentials add` or POST /api/v1/credentials/)",
    )
    assert removed.returncode == 0
    assert (again.returncode, again.stderr.strip()) == (
        2,
        "error: you have no credential named 'eos'",
    )


def test_the_server_log_never_holds_the_token(server: dict[str, str]) -> None:
    # Last in this module: by now the server has made, used and refused tokens.
    log = (Path(server["RECAST_VAR_DIR"]) / "server.log").read_text()
    # rc_<prefix>_<secret>: the secret, URL-safe base64, may hold "_" itself.
    secret = server["RECAST_TOKEN"].split("_", 2)[2]

    assert '"GET /api/v1/requests/' in log  # the access log is there to search
    assert secret not in log
    assert CREDENTIAL not in log
