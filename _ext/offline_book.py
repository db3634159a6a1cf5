"""Sphinx extension: the rendered book works with no network and without errors in the browser console.

Three fixes, each checked by the browser test (tests/browser/test_pages.py):

* **MathJax from the book itself** (below).
* **One copy of sphinx-thebe's settings script.** sphinx-thebe 0.3 adds its inline
  ``const THEBE_JS_URL = …`` script each time Sphinx reads the sources, and Jupyter Book's build
  does that twice, so every page declared the constant twice ("Identifier 'THEBE_JS_URL' has
  already been declared"). Identical scripts are kept once per page.
* **A theme mode to start from.** pydata-sphinx-theme reads the colour mode from the reader's
  ``localStorage`` and logs "Got invalid theme mode" on a first visit, when there is none and the
  page's ``default_mode`` is empty; ``"auto"`` (follow the system) is what it then falls back to anyway.

(The ipywidgets manager and require.js, which myst-nb would load from CDNs, are switched off in
``_config.yml``: ``nb_ipywidgets_js: {}``. The live explorers need a kernel; the page has static ones.)

Jupyter Book loads MathJax from a CDN by default; a reader offline (or a browser test on a machine
without internet) then sees raw TeX. This extension puts MathJax 3 into the book's ``_static``
folder instead:

1. It takes MathJax from the npm registry's ``mathjax`` package (a pinned version, checked against
   a pinned SHA-256 of the tarball), unpacked once into the course cache
   (``$DIFFUSION_COURSE_CACHE`` or ``~/.cache/diffusion-prior-course``, the folder the course's
   data and LPIPS weights use). ``COURSE_MATHJAX_TGZ`` may name a tarball already on disk.
2. It copies only what the page needs (about 3 MB): the combined ``tex-mml-chtml.js`` component,
   its CommonHTML fonts, the TeX extensions that load on demand, the context menu and the
   accessibility components (the speech engine, 4 MB, is left out).
3. It adds that folder to ``html_static_path`` and checks that ``mathjax_path`` in ``_config.yml``
   points into it.

A failure (no ``npm``, no registry, a tarball that does not match) stops the build with a message
that says what to do, rather than rendering a book whose math silently needs the internet.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from sphinx.errors import ExtensionError

from helpers._util import file_sha256  # the book is built with the course's package installed

MATHJAX_VERSION = "3.2.2"
MATHJAX_TGZ_SHA256 = "1b9c0a1c44df864e915690558e72adb9cc5203360daefd385084ced3b6c64c09"
ENTRY = "tex-mml-chtml.js"
MATHJAX_PATH = f"mathjax/{ENTRY}"  # relative to the built book's _static folder
# What the combined component loads at run time (relative to es5/), besides itself.
KEEP = [ENTRY, "output/chtml/fonts/woff-v2", "input/tex/extensions", "ui", "a11y"]


def _cache_dir() -> Path:
    env = os.environ.get("DIFFUSION_COURSE_CACHE")
    base = Path(env).expanduser() if env else Path.home() / ".cache" / "diffusion-prior-course"
    return base / "mathjax" / MATHJAX_VERSION


def _fetch_tarball(workdir: Path) -> Path:
    given = os.environ.get("COURSE_MATHJAX_TGZ")
    if given:
        path = Path(given).expanduser()
        if not path.is_file():
            raise ExtensionError(f"COURSE_MATHJAX_TGZ={given!r} is not a file: point it at mathjax-{MATHJAX_VERSION}.tgz")
        return path
    npm = shutil.which("npm")
    if npm is None:
        raise ExtensionError(
            "offline_book: MathJax is served from the book itself and comes from the npm registry, but `npm` "
            "is not installed: install Node.js/npm (Debian: apt-get install npm), or download "
            f"mathjax-{MATHJAX_VERSION}.tgz and set COURSE_MATHJAX_TGZ to its path"
        )
    try:
        subprocess.run([npm, "pack", f"mathjax@{MATHJAX_VERSION}", "--pack-destination", str(workdir), "--silent"],
                       check=True, capture_output=True, text=True, timeout=600)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
        detail = getattr(err, "stderr", "") or str(err)
        raise ExtensionError(
            f"offline_book: `npm pack mathjax@{MATHJAX_VERSION}` failed ({detail.strip()[-300:]}): the npm registry "
            f"must be reachable once, or set COURSE_MATHJAX_TGZ to a downloaded mathjax-{MATHJAX_VERSION}.tgz"
        ) from None
    return workdir / f"mathjax-{MATHJAX_VERSION}.tgz"


def ensure_mathjax() -> Path:
    """The folder to add to ``html_static_path`` (it holds ``mathjax/tex-mml-chtml.js``); fetched once."""
    static = _cache_dir() / "static"
    if (static / MATHJAX_PATH).is_file():
        return static
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tgz = _fetch_tarball(tmp)
        digest = file_sha256(tgz)
        if digest != MATHJAX_TGZ_SHA256:
            raise ExtensionError(f"offline_book: {tgz} has SHA-256 {digest}, expected {MATHJAX_TGZ_SHA256} "
                                 f"(mathjax {MATHJAX_VERSION}); delete it and fetch it again")
        with tarfile.open(tgz) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith("package/es5/") and (m.isfile() or m.isdir())]
            tar.extractall(tmp / "unpacked", members=members, filter="data")
        es5 = tmp / "unpacked" / "package" / "es5"
        staging = tmp / "static" / "mathjax"
        for rel in KEEP:
            src = es5 / rel
            if not src.exists():
                raise ExtensionError(f"offline_book: mathjax {MATHJAX_VERSION} has no es5/{rel}")
            dst = staging / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(src, dst) if src.is_dir() else shutil.copy2(src, dst)
        static.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(static, ignore_errors=True)
        shutil.move(str(tmp / "static"), static)  # complete or absent: a half copy is never left behind
    return static


def _on_page(app, pagename, templatename, context, doctree) -> None:
    """Per page: identical scripts once; a colour mode to start from (pydata-sphinx-theme's template variable)."""
    context["default_mode"] = context.get("default_mode") or "auto"
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        # Compare file and attributes only: the two copies of thebe's script differ in filename None vs "" alone.
        key = (getattr(script, "filename", script) or "",  # an inline script's filename is None or ""
               tuple(sorted((k, str(v)) for k, v in getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    context["script_files"] = kept


def _on_config_inited(app, config) -> None:
    if config.mathjax_path != MATHJAX_PATH:
        raise ExtensionError(f"offline_book: set `mathjax_path: {MATHJAX_PATH}` under sphinx.config in _config.yml "
                             f"(it is {config.mathjax_path!r}), so that the page loads the MathJax this extension serves")
    static = str(ensure_mathjax())
    if static not in config.html_static_path:
        config.html_static_path.append(static)


def setup(app):
    app.connect("config-inited", _on_config_inited)
    app.connect("html-page-context", _on_page)
    return {"version": MATHJAX_VERSION, "parallel_read_safe": True, "parallel_write_safe": True}
