"""`dbt-studio studio` as a user starts it: a one-line error without a built project; off localhost the token is
printed once and every request needs it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import requests
from click.testing import CliRunner

from sync_runner.cli import cli

from helpers import free_port


def test_without_a_manifest_it_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "dbt_project.yml").write_text("name: x\nprofile: x\n")
    proc = subprocess.run([sys.executable, "-c", "from sync_runner.cli import main; main()", "studio",
                           "--project-dir", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "manifest.json" in proc.stderr
    assert "studio" in CliRunner().invoke(cli, ["--help"]).output


def test_off_localhost_the_printed_token_is_required(built_example):
    project = built_example("duckdb")
    project.release()
    port = free_port()
    env = {**os.environ, "DBT_STUDIO_TOKEN": ""}
    proc = subprocess.Popen([sys.executable, "-c", "from sync_runner.cli import main; main()", "studio",
                             "--project-dir", str(project.root), "--target", "duckdb", "--host", "0.0.0.0",
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("Studio token"), first
        token = first.rsplit(" ", 1)[-1].strip()
        assert "dbt-studio studio: http://0.0.0.0:" in proc.stdout.readline()
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                requests.get(url + "/healthz", timeout=2)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        assert requests.get(url + "/audiences", timeout=10).status_code == 401
        session = requests.Session()
        assert session.get(f"{url}/audiences?token={token}", timeout=10).status_code == 200
        assert session.get(url + "/schema", timeout=10).status_code == 200  # the cookie carries it
        assert requests.get(url + "/schema", headers={"Authorization": f"Bearer {token}"}, timeout=10).ok
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
