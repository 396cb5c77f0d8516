"""TopK SAE (OpenAI recipe, EleutherAI sparsify, SAELens topk): keep the k largest of relu(pre)."""

import torch

from .base import SparseAutoencoder


class TopKSAE(SparseAutoencoder):
    architecture = "topk"
    # Per token, the top-k selection is not monotone per latent (a latent drops out when others
    # grow), so pooling does the selection per token first (pooling.affine_max_pool with
    # token_top_k: token chunks of at most max_elements pre-activations, never kept) and then the
    # max over the selecting tokens; after the selection the activation is relu, non-decreasing
    # with relu(0) = 0. Saved for backward: the same int32 (B, d_sae) argmax as ReLU/JumpReLU.
    monotone_activation = True

    @property
    def token_top_k(self) -> int:
        return int(self.config.k)

    def activate_pooled(self, pooled_pre: torch.Tensor) -> torch.Tensor:
        return torch.relu(pooled_pre)

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        values, indices = torch.topk(pre, self.config.k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, indices, torch.relu(values))
