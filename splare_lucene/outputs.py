"""Output paths: checked before any work starts, never one of the command's inputs, and replaced
only when the toolkit itself wrote what is there.

Every command that writes (``encode``, ``index``, ``search``, ``evaluate``, ``encode-queries``,
``train``, ``adapt``, ``assemble``, ``train-sae``) calls these before loading a model:

- :func:`check_not_input`: the output is not, does not contain and does not lie inside one of
  the command's inputs (resolved paths, so ``./x``, ``x/../x`` and symbolic links compare equal;
  ``os.path.samefile`` for hard links);
- :func:`check_output_file` / :func:`check_output_dir`: a file is not expected where a directory
  is (or the reverse), and the directory it goes into can be created and written (probed with a
  real temporary file, as permission bits do not stop root and ``/proc`` refuses new files
  whatever its bits say);
- :func:`check_replaceable` / :func:`safe_replace_dir`: ``--overwrite`` removes a directory only
  when it is empty or of a kind the toolkit writes (:data:`KINDS`); anything else is refused,
  naming what it holds.

Only the standard library is imported here: ``--help`` and argument checks stay fast.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence, Union

from .errors import ConfigError

PathLike = Union[str, "os.PathLike[str]"]
InputValue = Union[PathLike, Sequence[PathLike], None]


# -- what the toolkit writes ---------------------------------------------------------------------

def _is_index(path: Path) -> bool:
    """A Lucene index built by ``build_index`` (it writes ``splare_index.json`` into it)."""
    return (path / "splare_index.json").is_file()


def _is_encode_output(path: Path) -> bool:
    """An ``encode`` output: nothing but what ``encode`` writes (manifests, ``summary.json``,
    parts, its ``.work/`` directory), of any job or version."""
    from .engines.parts import _only_encode_outputs

    return _only_encode_outputs(path)


def _is_model(path: Path) -> bool:
    """A model directory of ``save_pretrained`` (``assemble``, ``train``, ``adapt``)."""
    return (path / "splare_config.json").is_file()


def _is_sae(path: Path) -> bool:
    """An SAE directory in the toolkit's format (``train-sae``)."""
    return (path / "sae_config.json").is_file()


#: The state file of a training checkpoint (``<output>.checkpoint``) of ``train`` and of ``adapt``;
#: ``train.trainer`` and ``train.mntp`` write them under these names.
TRAINER_STATE_FILE = "trainer_state.pt"
MNTP_STATE_FILE = "mntp_state.pt"


def _is_checkpoint(path: Path) -> bool:
    """A training checkpoint (``<output>.checkpoint`` of ``train`` or ``adapt``)."""
    return any((path / name).is_file() for name in (TRAINER_STATE_FILE, MNTP_STATE_FILE))


#: kind -> (description for messages, test). A directory may be replaced when it is empty or
#: passes the test of one of the kinds a caller allows.
KINDS: dict[str, tuple[str, Callable[[Path], bool]]] = {
    "index": ("an index built by `splare-lucene index` (with splare_index.json)", _is_index),
    "encode": ("an output of `splare-lucene encode` (manifests, summary.json and parts only)", _is_encode_output),
    "model": ("a model directory written by splare-lucene (with splare_config.json)", _is_model),
    "sae": ("an SAE directory written by `splare-lucene train-sae` (with sae_config.json)", _is_sae),
    "checkpoint": ("a training checkpoint of `splare-lucene train` or `adapt` (with "
                   f"{TRAINER_STATE_FILE} or {MNTP_STATE_FILE})", _is_checkpoint),
}


# -- path helpers --------------------------------------------------------------------------------

def resolved(path: PathLike) -> Path:
    """``path`` absolute, with ``~``, ``..`` and symbolic links resolved (it need not exist)."""
    return Path(os.path.expanduser(os.fspath(path))).resolve(strict=False)


def _is_path_input(value: PathLike) -> bool:
    """Whether an input names something on disk (``irds:...``, ``pypi:...``, hub ids and the
    built-in ``default`` model are not paths unless such a path exists)."""
    text = os.fspath(value)
    return bool(text) and os.path.lexists(text)


def _listing(path: Path, limit: int = 5) -> str:
    try:
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())
    except OSError as exc:
        return f"unreadable: {exc.strerror}"
    shown = ", ".join(names[:limit])
    return f"{len(names)} entries: {shown}{', ...' if len(names) > limit else ''}"


# -- checks --------------------------------------------------------------------------------------

def check_not_input(output: PathLike, inputs: Mapping[str, InputValue], *, what: str = "--output",
                    allow_contains: bool = False) -> None:
    """Refuse an output path that is, contains or lies inside one of ``inputs``.

    ``inputs``: option name (``"--corpus"``) -> a path, several paths, or None (ignored). Inputs
    that do not exist on disk (``irds:`` ids, hub ids, ``default``) are skipped. Writing to such
    a path would overwrite or delete the input (``search --queries q.tsv --output q.tsv``, or
    ``index --corpus C --index C --overwrite``) or mix outputs into it. ``allow_contains``: an
    output folder that is never replaced as a whole (``evaluate --output``) may hold these inputs;
    the caller then checks the files it writes there (:func:`check_not_written`).

    Raises:
        ConfigError: naming both options, both paths and the fix.
    """
    out = resolved(output)
    found: list[tuple[int, str, PathLike, str]] = []  # (rank, option, input, relation)
    for option, value in inputs.items():
        if value is None or isinstance(value, Mapping):  # e.g. qrels already read: not a path
            continue
        values: Iterable[PathLike] = [value] if isinstance(value, (str, os.PathLike)) else value
        for item in values:
            if item is None or not _is_path_input(item):
                continue
            inp = resolved(item)
            same = out == inp
            if not same and os.path.exists(out) and os.path.exists(inp):
                try:
                    same = os.path.samefile(out, inp)  # hard links, bind mounts
                except OSError:
                    same = False
            if same:
                found.append((0, option, item, "is the same path as"))
            elif out in inp.parents and not allow_contains:
                found.append((1, option, item, "contains"))
            elif inp in out.parents:
                found.append((2, option, item, "lies inside"))
    if found:  # the closest relation first: "is the same path as" the queries, not "inside" a folder
        _, option, item, relation = min(found, key=lambda f: f[0])
        raise ConfigError(f"{what} {output} {relation} the input {option} {item}: writing there would "
                          f"overwrite or delete that input. Pick an {what} path outside every input")


def check_not_written(inputs: Mapping[str, InputValue], output_dir: PathLike, written: Callable[[Path], bool],
                      *, what: str = "--output") -> None:
    """Refuse an input file inside ``output_dir`` that the command would write over:
    ``written(relative path)`` says whether it does. Raises ConfigError naming both."""
    out = resolved(output_dir)
    for option, value in inputs.items():
        if value is None or isinstance(value, Mapping):
            continue
        for item in [value] if isinstance(value, (str, os.PathLike)) else value:
            inp = resolved(item)
            if out in inp.parents and written(inp.relative_to(out)):
                raise ConfigError(f"the input {option} {item} is a file that {what} {output_dir} gets written "
                                  f"over ({inp.relative_to(out)}); copy it out of {output_dir} first, or pick "
                                  f"another {what}")


def check_apart(path: PathLike, other: PathLike, *, what: str, other_what: str) -> None:
    """Refuse two outputs of one command that are the same path or nested (e.g. ``index
    --keep-jsonl`` inside ``--index``), existing or not. Raises ConfigError naming both."""
    a, b = resolved(path), resolved(other)
    if a == b or a in b.parents or b in a.parents:
        raise ConfigError(f"{what} {path} and {other_what} {other} overlap (the same path, or one inside "
                          "the other); give them separate paths")


def _probe_writable(directory: Path, what: str, user_path: PathLike) -> None:
    """Create ``directory`` (and missing parents) and a temporary file in it, then remove all
    that was created. Raises ConfigError naming ``user_path`` when it cannot be done."""
    probe_from = directory
    missing: list[Path] = []
    while not probe_from.exists():
        if probe_from.is_symlink():  # a dangling link: mkdir would fail with a confusing error
            raise ConfigError(f"{what} {user_path}: {probe_from} is a broken symbolic link; fix it or "
                              "pick another path")
        missing.append(probe_from)
        if probe_from.parent == probe_from:
            break
        probe_from = probe_from.parent
    if probe_from.exists() and not probe_from.is_dir():
        raise ConfigError(f"{what} {user_path} cannot be created: {probe_from} is a file, not a directory; "
                          "pick another path")
    created: list[Path] = []
    try:
        for d in reversed(missing):
            d.mkdir()
            created.append(d)
        fd, probe = tempfile.mkstemp(prefix=".splare-write-check-", dir=directory)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        where = f" ({exc.filename})" if exc.filename else ""
        raise ConfigError(f"{what} {user_path} cannot be written: {reason}{where}; pick a path in a "
                          "directory you can write to") from exc
    finally:
        for d in reversed(created):  # leave no trace of the check; the command creates them later
            try:
                d.rmdir()
            except OSError:
                pass


def check_output_file(path: PathLike, *, what: str = "--output") -> Path:
    """Check, before any work, that a file can be written at ``path``: not an existing
    directory, and its directory creatable and writable. Returns ``Path(path)``.

    Raises:
        ConfigError: naming ``path`` as given and what is wrong.
    """
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{what} {path} is a directory; give a file path (e.g. {p / 'run.trec'})")
    _probe_writable(resolved(p).parent, what, path)
    return p


def check_output_dir(path: PathLike, *, what: str = "--output") -> Path:
    """Check, before any work, that a directory can be written at ``path``: not an existing
    file, and creatable and writable (it is not created). Returns ``Path(path)``.

    Raises:
        ConfigError: naming ``path`` as given and what is wrong.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{what} {path} is a file, not a directory; give a directory path")
    _probe_writable(resolved(p), what, path)
    return p


def check_replaceable(path: PathLike, kinds: Sequence[str], *, what: str = "--output") -> None:
    """Refuse to replace ``path`` unless it is absent, an empty directory, or a directory of one
    of ``kinds`` (keys of :data:`KINDS`): ``--overwrite`` replaces only what the toolkit wrote.

    Raises:
        ConfigError: naming what ``path`` holds and the fix (another path, or delete it by hand).
    """
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ValueError(f"kinds must be among {sorted(KINDS)}; got {unknown}")
    p = Path(path)
    if not os.path.lexists(p):
        return
    expected = " or ".join(KINDS[k][0] for k in kinds)
    if p.is_symlink() or not p.is_dir():
        kind = "a symbolic link" if p.is_symlink() else "a file"
        raise ConfigError(f"refusing to replace {what} {path}: it is {kind}, not {expected}. Pick another "
                          "path, or delete it by hand if it should go")
    if not any(p.iterdir()) or any(KINDS[k][1](p) for k in kinds):
        return
    raise ConfigError(f"refusing to replace {what} {path}: it is not {expected} (it holds {_listing(p)}). "
                      "--overwrite only replaces what splare-lucene wrote; pick another path, or delete "
                      "it by hand if it should go")


def safe_replace_dir(path: PathLike, kinds: Sequence[str], *, what: str = "--output") -> None:
    """Remove directory ``path`` after :func:`check_replaceable` (nothing when it is absent)."""
    check_replaceable(path, kinds, what=what)
    p = Path(path)
    if p.is_dir():
        shutil.rmtree(p)


def install_dir(tmp: PathLike, target: PathLike, kinds: Sequence[str], *, what: str = "--output") -> None:
    """Move the finished directory ``tmp`` to ``target``, replacing a ``target`` of ``kinds``
    (:func:`safe_replace_dir`; anything else raises ConfigError and ``tmp`` is left to the
    caller's cleanup)."""
    safe_replace_dir(target, kinds, what=what)
    os.replace(tmp, target)


@contextmanager
def staged_dir(target: PathLike, kinds: Sequence[str], *, what: str = "--output") -> Iterator[Path]:
    """A fresh temporary directory beside ``target`` to build it in (a fixed ``<target>.tmp``
    could be a user's folder): installed as ``target`` (:func:`install_dir`, replacing only a
    ``target`` of ``kinds``) when the block ends normally, removed when it raises (its random name
    means nothing else would remove it)."""
    tmp = temp_dir_beside(target, hidden=True)
    try:
        yield tmp
        install_dir(tmp, target, kinds, what=what)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def umask_mode(path: PathLike, mode: int) -> None:
    """Give ``path`` the permissions a plain ``open``/``mkdir`` would have (``mode`` less the
    umask; 0o666 for a file, 0o777 for a directory): ``mkstemp``/``mkdtemp`` create owner-only
    files and directories, and outputs (models, indexes, runs) and caches shared between users
    must stay readable by them. The umask is read from ``/proc/self/status`` where Linux has it;
    elsewhere it is set and restored, which briefly changes it process-wide."""
    umask = None
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                umask = int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    if umask is None:
        umask = os.umask(0)
        os.umask(umask)
    os.chmod(path, mode & ~umask)


def temp_dir_beside(target: PathLike, *, hidden: bool = False) -> Path:
    """A fresh directory beside ``target`` (its parent created if missing) in which to build it
    before ``os.replace`` installs it (same filesystem, so atomic): ``<name>.XXXX``, or with
    ``hidden`` ``.<name>.XXXX.tmp``. It gets the mode ``mkdir`` would give (:func:`umask_mode`),
    not mkdtemp's owner-only 0700, which the installed output would keep."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix, suffix = (f".{target.name}.", ".tmp") if hidden else (f"{target.name}.", "")
    tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=target.parent))
    umask_mode(tmp, 0o777)
    return tmp


def temp_path_beside(path: PathLike) -> Path:
    """A fresh, unused temporary file name in ``path``'s directory (same filesystem, so
    ``os.replace`` is atomic); created empty, so two writers never share it, and never a name a
    user's file may already have (unlike ``<path>.tmp``)."""
    p = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    os.close(fd)
    umask_mode(name, 0o666)  # the finished file replaces `path`: mkstemp's 0600 would make it private
    return Path(name)
