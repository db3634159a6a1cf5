"""_ext/offline_book.py: MathJax served from the book, one copy of each script, a colour mode to start from.

No network: the MathJax tarball is a small fake with the package's layout.
"""

from __future__ import annotations

import hashlib
import io
import sys
import tarfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "_ext"))
import offline_book as OB  # noqa: E402

from sphinx.errors import ExtensionError  # noqa: E402


def _fake_tarball(path: Path, missing: str | None = None) -> str:
    with tarfile.open(path, "w:gz") as tar:
        files = [OB.ENTRY, "output/chtml/fonts/woff-v2/MathJax_Main-Regular.woff", "input/tex/extensions/cancel.js",
                 "ui/menu.js", "a11y/explorer.js", "sre/speech.js"]
        for rel in files:
            if missing and rel.startswith(missing):
                continue
            data = f"// {rel}\n".encode()
            info = tarfile.TarInfo(f"package/es5/{rel}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def fake(tmp_path, monkeypatch):
    tgz = tmp_path / "mathjax.tgz"
    monkeypatch.setattr(OB, "MATHJAX_TGZ_SHA256", _fake_tarball(tgz))
    monkeypatch.setenv("COURSE_MATHJAX_TGZ", str(tgz))
    monkeypatch.setenv("DIFFUSION_COURSE_CACHE", str(tmp_path / "cache"))
    return tgz


def test_copies_what_the_page_loads_and_not_the_speech_engine(fake):
    static = OB.ensure_mathjax()
    assert (static / OB.MATHJAX_PATH).read_text() == f"// {OB.ENTRY}\n"
    kept = {p.relative_to(static / "mathjax").as_posix() for p in (static / "mathjax").rglob("*") if p.is_file()}
    assert kept == {OB.ENTRY, "output/chtml/fonts/woff-v2/MathJax_Main-Regular.woff", "input/tex/extensions/cancel.js",
                    "ui/menu.js", "a11y/explorer.js"}
    fake.unlink()  # the second call uses the cache, not the tarball
    assert OB.ensure_mathjax() == static


def test_a_tarball_with_another_hash_is_refused(fake, monkeypatch):
    monkeypatch.setattr(OB, "MATHJAX_TGZ_SHA256", "0" * 64)
    with pytest.raises(ExtensionError, match="SHA-256"):
        OB.ensure_mathjax()
    assert not (Path(OB._cache_dir()) / "static").exists()  # nothing half-copied is left behind


def test_a_tarball_without_a_needed_part_is_refused(tmp_path, monkeypatch):
    tgz = tmp_path / "mathjax.tgz"
    monkeypatch.setattr(OB, "MATHJAX_TGZ_SHA256", _fake_tarball(tgz, missing="ui"))
    monkeypatch.setenv("COURSE_MATHJAX_TGZ", str(tgz))
    monkeypatch.setenv("DIFFUSION_COURSE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ExtensionError, match="es5/ui"):
        OB.ensure_mathjax()


def test_missing_tarball_and_missing_npm_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFUSION_COURSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COURSE_MATHJAX_TGZ", str(tmp_path / "nope.tgz"))
    with pytest.raises(ExtensionError, match="COURSE_MATHJAX_TGZ"):
        OB.ensure_mathjax()
    monkeypatch.delenv("COURSE_MATHJAX_TGZ")
    monkeypatch.setattr(OB.shutil, "which", lambda name: None)
    with pytest.raises(ExtensionError, match="apt-get install npm"):
        OB.ensure_mathjax()


def test_config_must_point_mathjax_into_the_book(fake):
    class Config:
        mathjax_path = "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"
        html_static_path: list = []

    with pytest.raises(ExtensionError, match="mathjax_path: mathjax/tex-mml-chtml.js"):
        OB._on_config_inited(None, Config)
    Config.mathjax_path = OB.MATHJAX_PATH
    OB._on_config_inited(None, Config)
    assert Config.html_static_path == [str(OB.ensure_mathjax())]


def test_identical_scripts_are_kept_once_and_the_mode_is_set():
    from sphinx.builders.html._assets import _JavaScript

    thebe = "const THEBE_JS_URL = 'x'"
    scripts = [_JavaScript("_static/a.js"), _JavaScript(None, body=thebe), _JavaScript("_static/a.js", defer="defer"),
               _JavaScript("", body=thebe, priority=400), _JavaScript("_static/a.js")]
    context = {"script_files": scripts}
    OB._on_page(None, "p", "page.html", context, None)
    assert context["script_files"] == [scripts[0], scripts[1], scripts[2]]
    assert context["default_mode"] == "auto"
    context = {"default_mode": "dark"}
    OB._on_page(None, "p", "page.html", context, None)
    assert context["default_mode"] == "dark"


def test_the_book_uses_the_extension():
    import yaml

    config = yaml.safe_load((Path(__file__).resolve().parent.parent / "_config.yml").read_text())
    assert config["sphinx"]["local_extensions"] == {"offline_book": "_ext"}
    assert config["sphinx"]["config"]["mathjax_path"] == OB.MATHJAX_PATH
    assert config["sphinx"]["config"]["nb_ipywidgets_js"] == {}  # no widget manager from a CDN
