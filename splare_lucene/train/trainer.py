"""Retrieval fine-tuning: LoRA on the backbone (SAE or LM head frozen), KL distillation or
InfoNCE, FLOPS regularisation on queries and documents, resumable checkpoints.

The loop runs under Hugging Face ``accelerate``: one process (CPU or one GPU) or several
(``accelerate launch`` / ``torchrun``: DDP over the LoRA parameters, gloo on CPU, NCCL on GPU).
``cfg.batch_size`` is per process; each process takes its own slice of every global batch of
``batch_size x num_processes`` queries, and the losses and FLOPS are computed on the global batch
gathered from all processes, so N processes with batch b train exactly as 1 process with batch
N x b (same loss, same gradients, same sparsity).

Named recipes (``RECIPES``, ``recipe_config``) bundle settings: ``default`` is the toolkit's
historical defaults, ``paper`` the SPLARE paper's training set-up. Scores, losses and FLOPS are
computed in float32 whatever the backbone's dtype.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import torch

from ..errors import CheckpointError, ConfigError, TrainingError
from ..outputs import TRAINER_STATE_FILE
from .augment import case_augment, check_normalization, check_probability
from .data import TrainExample
from .losses import candidate_scores, flops, flops_weight, info_nce, kl_distillation

logger = logging.getLogger(__name__)

LOSSES = ("auto", "kl", "infonce")
MIXED_PRECISIONS = ("no", "bf16", "fp16")  # accelerate's; "no": the backbone's own dtype
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
# BERT/XLM-R name their linear layers query/key/value (attention) and dense (attention output,
# intermediate, output): used when the default decoder names are absent from the backbone.
ENCODER_TARGETS = ("query", "key", "value", "dense")


# Student temperatures per SAE family (SAEConfig.source) from the paper: SAE latents give much
# larger dot products than vocabulary logits, and a wrong temperature diverges.
FAMILY_TEMPERATURES = {"llamascope": 80.0, "gemmascope": 50.0, "gemmascope2": 50.0}
VOCAB_TEMPERATURE = 10.0  # the paper's vocabulary (SPLADE-Llama) baseline


@dataclass(frozen=True)
class TrainConfig:
    loss: str = "auto"  # auto: KL when every example has teacher scores, else InfoNCE
    # student temperature (KL) / InfoNCE temperature. None: from the head (see family_temperature);
    # 0: auto, the spread of the first batch's in-batch scores; > 0: this value.
    temperature: float | None = None
    in_batch_negatives: bool = True  # InfoNCE only
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    target_modules: tuple[str, ...] = DEFAULT_TARGETS
    lr: float = 5e-5
    warmup_fraction: float = 0.01
    epochs: int = 1
    max_steps: int = 0  # 0: as many as the epochs give
    batch_size: int = 8
    grad_accum: int = 1
    negatives: int = 1
    query_max_length: int = 32
    doc_max_length: int = 128
    flops_query: float = 1e-4
    flops_doc: float = 1e-4
    flops_warmup_fraction: float = 0.3
    train_top_k: bool = False  # apply the inference top-k while training (the paper does not)
    # probability that each training text is re-cased (lower, UPPER or Title; augment.py); 0: off
    case_augmentation: float = 0.0
    gradient_checkpointing: bool = False
    save_every: int = 50
    seed: int = 0

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ConfigError(f"loss must be one of {list(LOSSES)}; got {self.loss!r}")
        if self.batch_size < 1 or self.grad_accum < 1 or self.negatives < 0:
            raise ConfigError("batch_size and grad_accum must be >= 1 and negatives >= 0; got "
                              f"{self.batch_size}, {self.grad_accum}, {self.negatives}")
        check_probability(self.case_augmentation)
        if self.temperature is not None and self.temperature < 0:
            raise ConfigError(f"temperature must be > 0, 0 (auto) or None (from the SAE family); "
                              f"got {self.temperature}")

    @property
    def effective_batch_size(self) -> int:
        """Queries per optimizer step of one process: micro-batch x gradient accumulation (the
        global batch is this x the number of processes)."""
        return self.batch_size * self.grad_accum


# Each recipe lists only what it changes from TrainConfig's defaults; "effective_batch_size"
# (queries per optimizer step) is turned into grad_accum = effective / batch_size.
RECIPES: dict[str, dict] = {
    # the toolkit's defaults (what `train` did before recipes existed); the micro-batch of 16 was
    # the CLI's --batch-size default, which TrainConfig's 8 never applied to
    "default": {"batch_size": 16},
    # Formal et al., ICLR 2026, section "Training" (see docs/training.md for each value's source).
    # lora_alpha is not given in the paper: 2 x rank, the toolkit's usual ratio (16/32).
    "paper": {"loss": "kl", "lora_rank": 64, "lora_alpha": 128, "lr": 5e-5, "warmup_fraction": 0.01,
              "epochs": 1, "max_steps": 0, "negatives": 8, "batch_size": 8, "effective_batch_size": 128,
              "query_max_length": 128, "doc_max_length": 128, "flops_query": 1e-4, "flops_doc": 1e-4},
}


def recipe_config(recipe: str = "default", *, num_processes: int = 1, **overrides) -> TrainConfig:
    """The TrainConfig of ``recipe`` with ``overrides`` (explicit settings) applied on top.

    Precedence: overrides > recipe > TrainConfig defaults. ``effective_batch_size`` (queries per
    optimizer step, all processes together) may come from the recipe or the overrides; it sets
    ``grad_accum`` to ``effective_batch_size / (batch_size x num_processes)`` unless
    ``grad_accum`` is given explicitly (``batch_size`` is per process).

    Raises ConfigError for an unknown recipe or setting, an effective batch that ``batch_size``
    does not divide, or an explicit ``grad_accum`` that contradicts an explicit effective batch.
    """
    if recipe not in RECIPES:
        raise ConfigError(f"recipe must be one of {sorted(RECIPES)}; got {recipe!r}")
    known = {f.name for f in fields(TrainConfig)} | {"effective_batch_size"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"unknown training settings {unknown}; known: {sorted(known)}")
    values = {**RECIPES[recipe], **overrides}
    if num_processes < 1:
        raise ConfigError(f"num_processes must be >= 1; got {num_processes}")
    effective = values.pop("effective_batch_size", None)
    if effective is not None:
        # one optimizer step takes micro-batch x processes queries per accumulated micro-batch
        micro = values.get("batch_size", TrainConfig.batch_size) * num_processes
        if "grad_accum" in overrides:
            if "effective_batch_size" in overrides and micro * overrides["grad_accum"] != effective:
                procs = f" x {num_processes} processes" if num_processes > 1 else ""
                raise ConfigError(f"--effective-batch-size {effective} != --batch-size "
                                  f"{micro // num_processes}{procs} x --grad-accum "
                                  f"{overrides['grad_accum']}; give one of the last two")
            logger.info("explicit grad_accum %d: effective batch %d x %d = %d (recipe %s asked %d)",
                        overrides["grad_accum"], micro, overrides["grad_accum"],
                        micro * overrides["grad_accum"], recipe, effective)
        else:
            if effective < 1 or effective % micro:
                divisors = [n for n in (1, 2, 4, 8, 16, 32) if effective >= 1
                            and effective % (n * num_processes) == 0]
                per = f" ({micro // num_processes} per process x {num_processes} processes)" \
                    if num_processes > 1 else ""
                raise ConfigError(f"the effective batch {effective} is not a multiple of the micro-batch "
                                  f"{micro}{per}; pass a --batch-size that divides it (e.g. {divisors})")
            values["grad_accum"] = effective // micro
    return TrainConfig(**values)


def family_temperature(encoder) -> tuple[float, str]:
    """The paper's student temperature for ``encoder``'s head, and where it comes from.

    Vocabulary head: 10. SAE head: by ``SAEConfig.source`` (80 for Llama Scope, 50 for Gemma Scope
    and Gemma Scope 2). Any other SAE (SAELens, sparsify, the toolkit's own) returns (0.0, ...):
    the automatic temperature, chosen from the first batch's score spread.
    """
    if encoder.config.representation == "vocab":
        return VOCAB_TEMPERATURE, "paper: vocabulary head"
    source = encoder.head.config.source
    if source in FAMILY_TEMPERATURES:
        return FAMILY_TEMPERATURES[source], f"paper: {source} SAE"
    return 0.0, f"auto: no paper temperature for {source!r} SAEs"


@dataclass
class TrainState:
    step: int = 0
    history: list = field(default_factory=list)
    temperature: float = 0.0  # the auto temperature, once chosen (saved in checkpoints)
    # the model's text normalisation the run trains with (saved in checkpoints: a resume with
    # another one would mix two input distributions in one adapter)
    text_normalization: str = "none"
    # training seconds of the earlier runs a resumed run continues, up to their last checkpoint
    # (saved in checkpoints), and the wall clock at this run's first step
    seconds_before: float = 0.0
    started: float = 0.0

    def seconds_total(self) -> float:
        """Training seconds of this run so far plus those of the runs it resumed (up to the
        checkpoint each resume started from; time after an interrupted run's last checkpoint is
        redone, so not counted twice)."""
        return self.seconds_before + (time.time() - self.started if self.started else 0.0)


def _pick_loss(cfg: TrainConfig, examples: list[TrainExample]) -> str:
    has_scores = all(e.scores is not None for e in examples)
    if cfg.loss == "kl" and not has_scores:
        missing = sum(e.scores is None for e in examples)
        raise ConfigError(f"the KL loss (--loss kl, also --recipe paper's loss) needs teacher scores for "
                          f"every example ('scores' in the JSONL: one per candidate, positive first); "
                          f"{missing} of {len(examples)} examples have none. Add them, or pass --loss infonce")
    if cfg.loss == "auto":
        return "kl" if has_scores else "infonce"
    return cfg.loss


def _apply_lora(encoder, cfg: TrainConfig):
    from peft import LoraConfig, get_peft_model

    model = encoder.backbone.model
    present = {name.split(".")[-1] for name, _ in model.named_modules()}
    targets = [t for t in cfg.target_modules if t in present]
    if not targets and tuple(cfg.target_modules) == DEFAULT_TARGETS:
        targets = [t for t in ENCODER_TARGETS if t in present]
        if targets:
            logger.info("LoRA targets: %s (encoder layout; the decoder defaults %s are absent)",
                        targets, list(DEFAULT_TARGETS))
    if not targets:
        raise ConfigError(f"none of the LoRA target modules {list(cfg.target_modules)} exist in "
                          f"{type(model).__name__}; pass --target-modules (e.g. query,key,value for BERT)")
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    lora = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=targets, bias="none")
    from ..backbone import quiet_peft_wrapping

    with quiet_peft_wrapping():
        peft_model = get_peft_model(model, lora)
    encoder.backbone.model = peft_model
    encoder.peft_model = peft_model
    for p in encoder.head.parameters():
        p.requires_grad_(False)
    return peft_model


def make_accelerator(device: str = "auto", mixed_precision: str | None = None):
    """The ``accelerate.Accelerator`` a training run uses; create it before loading the encoder.

    In a multi-process launch (``accelerate launch``, ``torchrun``) creating it joins the process
    group (gloo on CPU, NCCL on CUDA) and makes ``cuda`` this process's own GPU
    (``cuda:LOCAL_RANK``), so an encoder loaded afterwards with ``device="cuda"`` lands there.
    ``device``: "cpu" forces CPU processes; anything else lets accelerate pick (CUDA, MPS, CPU).
    ``mixed_precision``: "no", "bf16" or "fp16" autocasts the backbone's forward (the SAE head,
    scores and losses stay float32); None takes ``accelerate launch --mixed_precision`` (the
    ``ACCELERATE_MIXED_PRECISION`` variable), else "no". Raises ConfigError for another value.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState, PartialState
    from accelerate.utils import DistributedType

    if mixed_precision is not None and mixed_precision not in MIXED_PRECISIONS:
        raise ConfigError(f"mixed_precision must be one of {list(MIXED_PRECISIONS)}; got {mixed_precision!r}")
    # accelerate keeps one process-wide state: a second Accelerator with other settings raises
    # "AcceleratorState has already been initialized and cannot be changed" (or silently inherits
    # the first one's mixed precision when given None), and `train` may run several times in one
    # process (tests, notebooks). Single-process state holds no process group, so it is reset
    # (accelerate's private _reset_state, accelerate 1.x); a distributed one is left alone.
    if PartialState._shared_state.get("distributed_type") == DistributedType.NO:
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    # device_placement=False: the encoder is already on its device (its tokenizer outputs follow
    # encoder.device), and moving the model behind its back would split the two
    return Accelerator(cpu=device == "cpu", mixed_precision=mixed_precision, device_placement=False)



def _global_batches(examples: list[TrainExample], cfg: TrainConfig, epoch: int, num_processes: int):
    """Global batches of ``cfg.batch_size x num_processes`` examples, shuffled by (seed, epoch):
    the same sequence in every process, whatever the number of processes."""
    size = cfg.batch_size * num_processes
    order = list(range(len(examples)))
    random.Random(cfg.seed * 1000 + epoch).shuffle(order)
    for s in range(0, len(order) - size + 1, size):
        yield [examples[i] for i in order[s:s + size]]


def _local_slice(global_batch: list[TrainExample], cfg: TrainConfig, rank: int) -> list[TrainExample]:
    """Process ``rank``'s micro-batch: slice ``rank`` (``cfg.batch_size`` examples) of a global
    batch, so that gathering the slices in rank order rebuilds the global batch."""
    return global_batch[rank * cfg.batch_size:(rank + 1) * cfg.batch_size]


def _gather_rows(x: torch.Tensor, accelerator) -> torch.Tensor:
    """(b, V) per process -> (N x b, V): the rows of every process, in rank order.

    Only this process's rows keep autograd (the others are detached copies): each process then
    computes the full global loss, and its backward gives the gradient through its own rows;
    DDP averages the N partial gradients, so the loss is multiplied by N to get their sum, the
    1-process gradient (``train`` does so). ``torch.distributed.nn.functional.all_gather`` would
    also keep autograd, but its backward sums every process's gradient for every row in an
    all-to-all of (N x b, V) tensors, which the copy-and-scale here does not need. Every process
    must pass the same shape (the global batches are cut in equal slices).
    """
    if accelerator.num_processes == 1:
        return x
    import torch.distributed as dist

    parts = [torch.empty_like(x) for _ in range(accelerator.num_processes)]
    dist.all_gather(parts, x.detach().contiguous())
    parts[accelerator.process_index] = x
    return torch.cat(parts)


class _Pooler(torch.nn.Module):
    """The module DDP wraps: (queries, documents) -> (B, V), (B*n, V) pooled vectors in float32.

    One forward for both sides, because DDP expects one forward per backward (a parameter used in
    two wrapped forwards is marked ready twice). Only the backbone (with its LoRA) is a
    submodule: the frozen head is identical in every process and DDP need not broadcast it.
    """

    def __init__(self, encoder, apply_top_k: bool):
        super().__init__()
        self.backbone = encoder.backbone.model
        object.__setattr__(self, "_encoder", encoder)  # not a submodule (see above)
        self.apply_top_k = apply_top_k

    def forward(self, queries: list[str], docs: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        # float32 from here on whatever the backbone dtype: bfloat16 keeps 8 significant bits,
        # so scores of ~2000 come out in steps of 8 (errors of ~7 measured on CPU), as large
        # as the score gaps the losses' softmax (temperature 50-80) has to resolve
        enc = self._encoder
        q = enc.pooled(queries, "query", apply_top_k=self.apply_top_k).float()  # (B, V)
        d = enc.pooled(docs, "document", apply_top_k=self.apply_top_k).float()  # (B*n, V)
        return q, d


def _head_pool_in_float32(head):
    """``head.pool`` with autocast off: accelerate's mixed precision autocasts the whole wrapped
    forward, which would run the SAE encoder's matmul in bf16/fp16; the SAE stays float32 (the
    head casts its input to its own dtype)."""
    pool = head.pool

    def pool_without_autocast(*args, **kwargs):
        h = args[0] if args else kwargs.get("h")
        device_type = h.device.type if isinstance(h, torch.Tensor) else "cpu"
        with torch.autocast(device_type=device_type, enabled=False):
            return pool(*args, **kwargs)

    return pool_without_autocast


STATE_FILE = TRAINER_STATE_FILE


def _save_checkpoint(directory: Path, peft_model, opt, sched, state: TrainState, accelerator=None) -> None:
    """Write the adapter and the optimizer/scheduler/loop state to ``directory`` atomically (a
    temporary directory renamed into place). Called by every process: only the main one writes
    (the LoRA weights and the optimizer state are the same in every process after the DDP
    all-reduce); each process's RNG state is gathered into the file; all return once it exists.

    ``trainer_state.pt`` holds only tensors, numbers, strings, lists, tuples and dicts (optimizer
    and scheduler ``state_dict``s, the loop state, the torch CPU and CUDA RNG states as uint8
    tensors, one per process), so
    ``_load_checkpoint`` reads it with ``torch.load(weights_only=True)``. Python's ``random`` and
    numpy's RNGs are not saved: training draws its batches from ``random.Random(seed, epoch)``
    objects of its own (``_global_batches``), and nothing else in the loop uses them."""
    rng = torch.get_rng_state()
    # this process's CUDA generator too (LoRA dropout on the GPU), when CUDA is in use
    cuda_rng = torch.cuda.get_rng_state() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    multi = accelerator is not None and accelerator.num_processes > 1
    pairs = accelerator.gather_for_metrics([(rng, cuda_rng)], use_gather_object=True) if multi else [(rng, cuda_rng)]
    rngs, cuda_rngs = [cpu for cpu, _ in pairs], [cuda for _, cuda in pairs]
    if accelerator is None or accelerator.is_main_process:
        from .checkpoint import write_checkpoint

        write_checkpoint(directory, peft_model, STATE_FILE,
                         {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "step": state.step,
                          "history": state.history, "temperature": state.temperature,
                          "text_normalization": state.text_normalization,
                          "seconds": state.seconds_total(),
                          "torch_rng": rng, "torch_rng_per_process": rngs, "cuda_rng_per_process": cuda_rngs,
                          "num_processes": len(rngs)})
    if multi:
        accelerator.wait_for_everyone()


def _load_checkpoint(directory: Path, peft_model, opt, sched, state: TrainState, accelerator=None) -> None:
    """Load a checkpoint of ``_save_checkpoint`` (every process loads the same files). A run may
    resume with another number of processes: the global batches do not depend on it.

    No code from the checkpoint runs: the adapter is read from safetensors and
    ``trainer_state.pt`` with ``torch.load(weights_only=True)``, whose unpickler builds only
    tensors and plain containers. Raises CheckpointError (naming the file and how to restart)
    when either file is missing, corrupt, or holds anything else, e.g. a planted pickle whose
    ``__reduce__`` would call ``os.system``.
    """
    from peft import set_peft_model_state_dict

    from .checkpoint import read_checkpoint

    restart = (f"delete {directory} to restart the run from step 0 (or pass --no-resume), or "
               "restore the checkpoint that run wrote")
    adapter, saved = read_checkpoint(directory, STATE_FILE, {"optimizer", "scheduler", "step", "history"},
                                     "a trainer state", restart)
    set_peft_model_state_dict(peft_model, adapter)
    state_file = directory / STATE_FILE
    # a checkpoint from before the field was trained on texts as given
    saved_norm = saved.get("text_normalization", "none")
    if saved_norm != state.text_normalization:
        raise CheckpointError(f"{state_file}: this run was started with text_normalization {saved_norm!r} and is "
                              f"resumed with {state.text_normalization!r}; resume with --text-normalization "
                              f"{saved_norm}, or {restart}")
    opt.load_state_dict(saved["optimizer"])
    sched.load_state_dict(saved["scheduler"])
    state.step, state.history = saved["step"], saved["history"]
    state.temperature = saved.get("temperature", 0.0)
    state.seconds_before = float(saved.get("seconds", 0.0))  # checkpoints from before the field: 0
    rank = accelerator.process_index if accelerator is not None else 0
    per_process = saved.get("torch_rng_per_process") or [saved["torch_rng"]]
    torch.set_rng_state(per_process[rank] if rank < len(per_process) else saved["torch_rng"])
    cuda_states = saved.get("cuda_rng_per_process") or []
    if rank < len(cuda_states) and cuda_states[rank] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(cuda_states[rank])  # the current device, set by accelerate
    if saved.get("num_processes", 1) != (accelerator.num_processes if accelerator is not None else 1):
        logger.info("checkpoint written by %d processes, resumed by %d (same global batches)",
                    saved.get("num_processes", 1), accelerator.num_processes if accelerator else 1)
    logger.info("resumed from %s at step %d", directory, state.step)


def _check_device(encoder, accelerator) -> None:
    """DDP needs the model on this process's own device; raise ConfigError otherwise."""
    if accelerator.num_processes == 1:
        return
    have = torch.device(encoder.device)
    want = accelerator.device
    if have.type != want.type or (want.type == "cuda" and (have.index if have.index is not None
                                                            else torch.cuda.current_device()) != want.index):
        raise ConfigError(f"process {accelerator.process_index} has its encoder on {have} but accelerate "
                          f"gave it {want}: create the Accelerator (trainer.make_accelerator) before "
                          "loading the encoder, then load it with device='cuda' (or 'cpu' with --cpu)")


def train(encoder, examples: list[TrainExample], cfg: TrainConfig, output_dir: Path, *,
          resume: bool = True, progress: bool = True, recipe: str | None = None,
          accelerator=None) -> dict:
    """Fine-tune ``encoder`` in place and write the model directory to ``output_dir``.

    Each optimizer step consumes ``cfg.grad_accum`` micro-batches; a micro-batch is a global
    batch of ``cfg.batch_size x N`` queries (N processes; each process encodes its own
    ``cfg.batch_size``), each with ``1 + cfg.negatives`` candidates, re-cased first with probability
    ``cfg.case_augmentation`` per text (:mod:`.augment`). The KL/InfoNCE loss, the
    in-batch negatives and the FLOPS means are over the global micro-batch, so the result does
    not depend on N. ``accelerator``: from ``make_accelerator`` (one is made when None; in a
    multi-process launch make it before loading the encoder). Only the main process writes the
    checkpoint (``<output_dir>.checkpoint``, every ``cfg.save_every`` steps) and the model; every
    process resumes from the checkpoint. Texts are normalised by ``encoder.config.text_normalization``
    (through ``encoder.pooled``), which the saved model keeps; a checkpoint of a run with another
    normalisation is refused (CheckpointError). ``recipe`` is only recorded in the report. Returns the
    report written to ``output_dir/train_report.json`` (the same in every process). Raises
    ConfigError for an impossible set-up (no examples, fewer examples than one step, KL without
    teacher scores, an encoder on another device than the process's, case augmentation on a model
    whose text_normalization is not "none").
    """
    from tqdm.auto import tqdm

    from ..config import TextSide

    if not examples:
        raise ConfigError("no training examples")
    loss_name = _pick_loss(cfg, examples)
    if accelerator is None:
        accelerator = make_accelerator(str(torch.device(encoder.device).type))
    _check_device(encoder, accelerator)
    check_normalization(cfg.case_augmentation, encoder.config.text_normalization)
    world, rank, main = accelerator.num_processes, accelerator.process_index, accelerator.is_main_process
    accelerator.gradient_accumulation_steps = cfg.grad_accum
    torch.manual_seed(cfg.seed)
    # Training lengths apply while training; the saved model keeps its inference lengths
    # (the paper trains at 128 tokens and evaluates with longer contexts).
    if encoder.config.query_idf_power:
        # the stored latent document frequencies were counted with the old adapter: stale after training
        logger.warning("the model weights query latents by idf (query_idf_power %g); the trained model is "
                       "written without it: recount with `splare-lucene configure --query-idf-corpus DIR "
                       "--query-idf-power %g` (splare_lucene.latent_idf)", encoder.config.query_idf_power,
                       encoder.config.query_idf_power)
    encoder.query_latent_weights = None
    inference_config = encoder.config.replace(adapter="adapter", query_idf_power=0.0)
    encoder.config = inference_config.replace(
        query=TextSide(cfg.query_max_length, encoder.config.query.top_k, encoder.config.query.prefix),
        document=TextSide(cfg.doc_max_length, encoder.config.document.top_k, encoder.config.document.prefix))
    peft_model = _apply_lora(encoder, cfg)
    peft_model.train()
    params = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    global_size = cfg.batch_size * world
    steps_per_epoch = len(examples) // (global_size * cfg.grad_accum)
    total = cfg.max_steps or steps_per_epoch * cfg.epochs
    if total <= 0:
        raise ConfigError(f"{len(examples)} examples make no full step of batch {cfg.batch_size} x "
                          f"{world} processes x accumulation {cfg.grad_accum}; use more data or a smaller "
                          "--batch-size, --grad-accum or --effective-batch-size")
    warmup = max(1, math.ceil(cfg.warmup_fraction * total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup))))
    flops_warmup = int(cfg.flops_warmup_fraction * total)
    state = TrainState(text_normalization=encoder.config.text_normalization)
    ckpt = Path(output_dir).with_name(Path(output_dir).name + ".checkpoint")
    from ..outputs import check_replaceable

    # both are replaced below (a checkpoint every save_every steps, the model at the end): only
    # what the toolkit wrote may be, checked before the first step (issue 10)
    check_replaceable(output_dir, ["model"], what="model directory")
    check_replaceable(ckpt, ["checkpoint"], what="checkpoint directory")
    if resume and (ckpt / STATE_FILE).is_file():
        _load_checkpoint(ckpt, peft_model, opt, sched, state, accelerator)
    # The scheduler is stepped here once per optimizer step, not prepared: accelerate's
    # AcceleratedScheduler steps N times per step (it assumes per-process epochs of 1/N the data),
    # while `total` already counts global steps.
    pooler, opt = accelerator.prepare(_Pooler(encoder, cfg.train_top_k), opt)
    original_pool = encoder.head.__dict__.get("pool")
    encoder.head.pool = _head_pool_in_float32(encoder.head)
    if cfg.temperature is None:
        family, temperature_source = family_temperature(encoder)
        if family > 0:
            logger.info("student temperature %g (%s); --temperature overrides it", family, temperature_source)
        else:
            logger.warning("student temperature: %s (the paper: 80 Llama Scope, 50 Gemma Scope, 10 "
                           "vocabulary); using the automatic one; pass --temperature to fix it",
                           temperature_source)
    elif cfg.temperature > 0:
        family, temperature_source = cfg.temperature, "given"
    else:
        family, temperature_source = 0.0, "auto: asked for"
    temperature = family if family > 0 else state.temperature
    if main:
        logger.info("training %s: micro-batch %d queries x %d candidates x %d processes, %d micro-batches "
                    "per step (effective batch %d), %d steps, backbone %s on %s, mixed precision %s; "
                    "scores and losses in float32", loss_name, cfg.batch_size, 1 + cfg.negatives, world,
                    cfg.grad_accum, cfg.effective_batch_size * world, total,
                    str(encoder.backbone.model.dtype).removeprefix("torch."), encoder.device,
                    accelerator.mixed_precision)
    bar = tqdm(total=total, initial=state.step, desc=f"train ({loss_name})", unit="step",
               disable=not (progress and main))
    start = state.started = time.time()
    done = state.step * cfg.grad_accum  # micro-batches already consumed (for resume)
    epoch = 0
    try:
        while state.step < total:
            for index, global_batch in enumerate(_global_batches(examples, cfg, epoch, world)):
                if done > 0:
                    done -= 1
                    continue
                # re-cased on the global batch, keyed by its position: every process, and a
                # resumed run, sees the texts a one-process run sees
                global_batch = case_augment(global_batch, cfg.case_augmentation, f"{cfg.seed}:{epoch}:{index}")
                batch = _local_slice(global_batch, cfg, rank)
                queries = [e.query for e in batch]
                docs = [d for e in batch for d in e.docs[: 1 + cfg.negatives]]
                # accumulate: no DDP all-reduce until the last micro-batch of the step, and
                # accelerator.backward divides the loss by grad_accum
                with accelerator.accumulate(pooler):
                    q_local, d_local = pooler(queries, docs)
                    q = _gather_rows(q_local, accelerator)  # (N*b, V): the global micro-batch
                    d = _gather_rows(d_local, accelerator)  # (N*b*n, V)
                    if temperature <= 0:
                        # auto: the spread of the initial in-batch scores, so that softmax starts
                        # unsaturated whatever the representation's scale (SAE latents vs vocabulary
                        # logits differ by orders of magnitude; the paper hand-picks 10 to 80).
                        # Fixed from then on; the same in every process (global batch).
                        with torch.no_grad():
                            temperature = max(float((q @ d.t()).std()), 1e-3)
                        logger.info("auto temperature: %.4g", temperature)
                        state.temperature = temperature
                    if loss_name == "kl":
                        teacher = torch.tensor([list(e.scores[: 1 + cfg.negatives]) for e in global_batch],
                                               device=q.device)  # (N*b, n)
                        rank_loss = kl_distillation(candidate_scores(q, d), teacher, temperature)
                    else:
                        rank_loss = info_nce(q, d, temperature, cfg.in_batch_negatives)
                    lq = flops_weight(state.step, cfg.flops_query, flops_warmup)
                    ld = flops_weight(state.step, cfg.flops_doc, flops_warmup)
                    fq, fd = flops(q), flops(d)
                    loss = rank_loss + lq * fq + ld * fd
                    # x N: DDP averages the N processes' gradients (see _gather_rows)
                    accelerator.backward(loss * world)
                    if not accelerator.sync_gradients:
                        continue
                    accelerator.clip_grad_norm_(params, 1.0)
                    opt.step()
                    sched.step()
                    opt.zero_grad(set_to_none=True)
                state.step += 1
                record = {"step": state.step, "loss": round(rank_loss.item(), 5), "flops_q": round(fq.item(), 3),
                          "flops_d": round(fd.item(), 3), "nnz_q": round(float((q > 0).sum(1).float().mean()), 1),
                          "nnz_d": round(float((d > 0).sum(1).float().mean()), 1)}
                if not math.isfinite(record["loss"]):
                    # the same in every process (computed on the global batch), so all raise; the
                    # optimizer has already applied this step's NaN gradients, so nothing is saved
                    kept = (f"the checkpoint {ckpt} (step {state.step - 1 - (state.step - 1) % cfg.save_every}) "
                            "is kept and a rerun resumes from it"
                            if cfg.save_every and state.step > cfg.save_every else "no checkpoint was written")
                    raise TrainingError(
                        f"the {loss_name} loss is {record['loss']} at step {state.step}, so the update just "
                        f"applied is not finite and the model is not written; {kept}. Usual causes: a "
                        "learning rate too high for this model (lower --lr), or scores that overflow at this "
                        "--temperature")
                state.history.append(record)
                bar.update(1)
                bar.set_postfix({k: v for k, v in record.items() if k != "step"})
                if cfg.save_every and state.step % cfg.save_every == 0 and state.step < total:
                    _save_checkpoint(ckpt, peft_model, opt, sched, state, accelerator)
                if state.step >= total:
                    break
            epoch += 1
    finally:
        if original_pool is None:
            encoder.head.__dict__.pop("pool", None)
        else:
            encoder.head.pool = original_pool
    bar.close()
    peft_model.eval()
    # the resolved values: the temperature actually used and the effective batch
    resolved = asdict(replace(cfg, temperature=temperature))
    report = {"loss": loss_name, "temperature": temperature, "temperature_source": temperature_source,
              "recipe": recipe, "effective_batch_size": cfg.effective_batch_size * world,
              "processes": world, "mixed_precision": accelerator.mixed_precision,
              "dtype": str(encoder.backbone.model.dtype).removeprefix("torch."), "device": str(encoder.device),
              "steps": state.step, "examples": len(examples),
              "seconds_this_run": round(time.time() - start, 1),
              "seconds_total": round(state.seconds_total(), 1), "config": resolved,
              "history": state.history}
    encoder.config = inference_config
    if main:
        encoder.save_pretrained(output_dir, overwrite=True)
        (Path(output_dir) / "train_report.json").write_text(json.dumps(report, indent=2) + "\n")
        shutil.rmtree(ckpt, ignore_errors=True)
    accelerator.wait_for_everyone()
    return report
