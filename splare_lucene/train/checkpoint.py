"""Write and read a training checkpoint directory: ``adapter/`` (safetensors) plus one state file.

`train` (``trainer_state.pt``) and `adapt` (``mntp_state.pt``) use the same layout; each builds its
own state and checks its own keys and settings on what ``read_checkpoint`` returns. Nothing in the
files runs: the adapter is read from safetensors and the state with
``torch.load(weights_only=True)``, whose unpickler builds only tensors, numbers and plain
containers.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import CheckpointError


def write_checkpoint(directory: Path, peft_model, state_name: str, state: dict) -> None:
    """Write ``peft_model``'s adapter to ``directory/adapter`` and ``state`` to ``directory/state_name``
    atomically: built in a fresh temporary directory beside it, then renamed into place
    (``outputs.staged_dir``), so an interrupted write leaves the previous checkpoint whole.

    ``state`` must hold only tensors, numbers, strings and plain containers: ``read_checkpoint``
    refuses anything else. Raises ConfigError when ``directory`` exists and is not a checkpoint.
    """
    import torch

    from ..outputs import staged_dir

    with staged_dir(directory, ["checkpoint"], what="checkpoint directory") as tmp:
        peft_model.save_pretrained(str(tmp / "adapter"))
        torch.save(state, tmp / state_name)


def read_checkpoint(directory: Path, state_name: str, required: set[str], what: str,
                    restart: str) -> tuple[dict, dict]:
    """The adapter's tensors and the state dict of the checkpoint in ``directory``.

    Args:
        directory: the checkpoint directory (``<output>.checkpoint``).
        state_name: the state file's name inside it, e.g. ``trainer_state.pt``.
        required: keys the state dict must hold.
        what: the state's name in messages, with its article ("a trainer state").
        restart: the end of every message: how to start over.

    Raises:
        CheckpointError: the adapter or the state file is missing or corrupt, the state holds
            anything but tensors and plain containers (e.g. a planted pickle whose ``__reduce__``
            would call ``os.system``), or it lacks a ``required`` key; the message names the file
            and ends with ``restart``.
    """
    import torch
    from safetensors.torch import load_file

    weights = directory / "adapter" / "adapter_model.safetensors"
    try:
        adapter = load_file(str(weights))
    except Exception as exc:  # FileNotFoundError, SafetensorError (corrupt header), ...
        raise CheckpointError(f"cannot read the checkpoint's adapter {weights}: {exc}; {restart}") from exc
    state_file = directory / state_name
    try:
        saved = torch.load(state_file, map_location="cpu", weights_only=True)
    except Exception as exc:
        # weights_only=True raises pickle.UnpicklingError naming the first global it refuses
        # (e.g. "posix.system"); a truncated or foreign file raises RuntimeError/EOFError.
        from ..backbone import pickle_refusal_reason

        raise CheckpointError(
            f"{state_file} was not loaded: it is not {what} this toolkit writes (only tensors, numbers "
            f"and plain containers are read, since unpickling anything else can run code from the "
            f"file): {pickle_refusal_reason(exc)}; {restart}") from exc
    if not isinstance(saved, dict) or not required <= saved.keys():
        raise CheckpointError(f"{state_file} does not hold {what} (a dict with {', '.join(sorted(required))}); "
                              f"{restart}")
    return adapter, saved
