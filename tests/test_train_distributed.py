"""Multi-process training (DDP through accelerate) on 2 CPU processes with the gloo backend.

N processes with batch b must train exactly as 1 process with batch N x b: the losses, the FLOPS
regulariser and the in-batch negatives use the global batch gathered from every process, and the
loss is scaled so that DDP's gradient averaging gives the 1-process gradient. A run killed after
a checkpoint resumes in every process and ends with the adapter of an uninterrupted run.

The processes are started with ``torch.multiprocessing.spawn`` (a worker in this module); the
``accelerate launch`` and ``torchrun`` command lines of docs/training.md go through the same
``train`` after the CLI has made the Accelerator.
"""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest
import torch

from test_train import _write_examples

pytestmark = pytest.mark.slow  # 3 launches of 2 processes: about a minute on 2 CPU cores

STEPS = 4  # optimizer steps of the kill/resume runs (checkpoint at step 2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(batch_size: int, max_steps: int, save_every: int = 0):
    from splare_lucene.train.trainer import TrainConfig

    # InfoNCE with in-batch negatives and a FLOPS weight at full strength from step 1 (warm-up of
    # int(0.3 x steps) <= 1 step), so that both global-batch terms weigh in the gradient
    return TrainConfig(loss="infonce", batch_size=batch_size, grad_accum=2, max_steps=max_steps, lr=1e-2,
                       lora_rank=4, temperature=10.0, flops_query=0.1, flops_doc=0.1, save_every=save_every)


def _capture_first_gradients(store: list) -> None:
    """Record the LoRA gradients (DDP-averaged, before clipping) of the first optimizer step."""
    from accelerate import Accelerator

    real = Accelerator.clip_grad_norm_

    def clip(self, parameters, *args, **kwargs):
        parameters = list(parameters)
        if not store:
            store.append([p.grad.detach().clone() for p in parameters])
        return real(self, parameters, *args, **kwargs)

    Accelerator.clip_grad_norm_ = clip


def _worker(rank: int, world: int, port: int, job: dict) -> None:
    """One training process: join the gloo group, train, and (rank 0) save the report and the first
    step's gradients to ``job['result']``. ``job['kill_after_checkpoint']``: SIGKILL every process
    once the first checkpoint is written."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world), OMP_NUM_THREADS="1")
    torch.set_num_threads(1)
    from splare_lucene.encoder import SplareEncoder
    from splare_lucene.train import trainer
    from splare_lucene.train.data import load_examples

    accelerator = trainer.make_accelerator("cpu")  # before the encoder, as the CLI does
    assert accelerator.num_processes == world and accelerator.process_index == rank
    grads: list = []
    _capture_first_gradients(grads)
    if job.get("kill_after_checkpoint"):
        real_save = trainer._save_checkpoint

        def save_then_die(*args, **kwargs):
            real_save(*args, **kwargs)  # returns in every process once the checkpoint exists
            os.kill(os.getpid(), signal.SIGKILL)

        trainer._save_checkpoint = save_then_die
    examples = load_examples(job["data"], 1, seed=0)
    encoder = SplareEncoder.from_pretrained(job["model"], device="cpu")
    report = trainer.train(encoder, examples, job["cfg"], Path(job["output"]), progress=False,
                           accelerator=accelerator)
    if rank == 0:
        torch.save({"report": report, "grads": grads[0] if grads else None}, job["result"])


def _launch(job: dict, world: int = 2) -> dict:
    import torch.multiprocessing as mp

    mp.spawn(_worker, args=(world, _free_port(), job), nprocs=world, join=True)
    return torch.load(job["result"], weights_only=False)


def _adapter(directory: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(directory / "adapter" / "adapter_model.safetensors"))


def test_two_processes_train_as_one_with_the_global_batch_and_resume_after_a_kill(tiny_model, tmp_path,
                                                                                  monkeypatch):
    from splare_lucene.encoder import SplareEncoder
    from splare_lucene.train.data import load_examples
    from splare_lucene.train.trainer import train

    data = str(_write_examples(tmp_path / "ex.jsonl", with_scores=False, n=16))
    job = dict(model=str(tiny_model), data=data)

    # -- 2 processes x batch 2 == 1 process x batch 4, for one step (grad_accum 2 each) --------
    two = _launch({**job, "cfg": _config(2, STEPS, save_every=0), "output": str(tmp_path / "two"),
                   "result": str(tmp_path / "two.pt")})
    ref_grads: list = []
    with monkeypatch.context() as m:
        from accelerate import Accelerator

        m.setattr(Accelerator, "clip_grad_norm_", Accelerator.clip_grad_norm_)  # restored on exit
        _capture_first_gradients(ref_grads)
        one = train(SplareEncoder.from_pretrained(tiny_model, device="cpu"), load_examples(data, 1, seed=0),
                    _config(4, 1), tmp_path / "one", progress=False)
    assert two["report"]["processes"] == 2 and one["processes"] == 1
    assert two["report"]["effective_batch_size"] == one["effective_batch_size"] == 8
    first_two, first_one = two["report"]["history"][0], one["history"][0]
    # loss (InfoNCE over the global in-batch negatives), FLOPS and sparsity of the global batch
    for key in ("loss", "flops_q", "flops_d", "nnz_q", "nnz_d"):
        assert first_two[key] == pytest.approx(first_one[key], rel=1e-4, abs=1e-4), key
    assert len(two["grads"]) == len(ref_grads[0]) > 0
    for g2, g1 in zip(two["grads"], ref_grads[0]):
        torch.testing.assert_close(g2, g1, rtol=1e-4, atol=1e-6 * float(g1.abs().max()) + 1e-9)

    # -- killed after the step-2 checkpoint, resumed: the uninterrupted run's adapter ------------
    killed = {**job, "cfg": _config(2, STEPS, save_every=2), "output": str(tmp_path / "resumed"),
              "result": str(tmp_path / "resumed.pt")}
    with pytest.raises(torch.multiprocessing.ProcessExitedException, match="SIGKILL"):
        _launch({**killed, "kill_after_checkpoint": True})
    assert (tmp_path / "resumed.checkpoint" / "trainer_state.pt").is_file()
    assert not (tmp_path / "resumed").exists()
    saved = torch.load(tmp_path / "resumed.checkpoint" / "trainer_state.pt", weights_only=False)
    assert saved["step"] == 2 and saved["num_processes"] == 2 and len(saved["torch_rng_per_process"]) == 2
    resumed = _launch(killed)
    assert resumed["report"]["steps"] == STEPS and len(resumed["report"]["history"]) == STEPS
    for a, b in zip(two["report"]["history"], resumed["report"]["history"]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4, abs=1e-5)
    want, got = _adapter(tmp_path / "two"), _adapter(tmp_path / "resumed")
    assert want.keys() == got.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-6)
    assert not (tmp_path / "resumed.checkpoint").exists()
