"""``deploy/``: the files docs/deployment.md shows are the files in the repository, and
nginx (where installed) accepts its configuration."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
GUIDE = ROOT / "docs" / "deployment.md"


def shown_blocks(language: str) -> list[str]:
    """The fenced ``language`` blocks of the deployment guide."""
    return re.findall(rf"```{language}\n(.*?)```", GUIDE.read_text(), flags=re.DOTALL)


def without_header(path: Path) -> str:
    """The file less its opening comment (where it goes), which the guide says in prose."""
    lines = path.read_text().splitlines(keepends=True)
    while lines and (lines[0].startswith("#") or not lines[0].strip()):
        lines.pop(0)
    return "".join(lines)


@pytest.mark.parametrize(
    ("name", "language"), [("nginx.conf", "nginx"), ("pushwire.service", "ini")]
)
def test_the_guide_shows_the_deploy_file_as_it_is(name: str, language: str) -> None:
    assert without_header(DEPLOY / name) in shown_blocks(language)


def test_nginx_accepts_the_load_balancer_configuration(tmp_path: Path) -> None:
    nginx = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )
    if nginx is None:
        pytest.skip("nginx is not installed")
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{\n    access_log off;\n    include {DEPLOY / 'nginx.conf'};\n}}\n"
    )

    result = subprocess.run(
        [nginx, "-t", "-c", str(main), "-p", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 0, result.stderr
