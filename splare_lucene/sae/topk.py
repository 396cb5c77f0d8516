"""TopK SAE (OpenAI recipe, EleutherAI sparsify, SAELens topk): keep the k largest of relu(pre)."""

import torch

from .base import SparseAutoencoder


class TopKSAE(SparseAutoencoder):
    architecture = "topk"

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        values, indices = torch.topk(pre, self.config.k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, indices, torch.relu(values))
