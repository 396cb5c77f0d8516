"""Where encoding runs. Every engine writes the same parts, done-markers and manifests
(:mod:`.parts`), so any engine can resume any other's output and ``index`` reads them all.

- :mod:`.local`: one process, one shard, part after part (``encode``, ``index --corpus``,
  ``evaluate``).
- ``ray``: Ray Data actors, each writing its own parts (``encode --engine ray``).

Heavy imports (torch, tqdm, ray) happen inside the functions that need them.
"""

from .parts import DEFAULT_PART_SIZE, EncodingJob, PartsDir, PartSpec, ShardSpec, read_outputs

__all__ = ["DEFAULT_PART_SIZE", "EncodingJob", "PartSpec", "PartsDir", "ShardSpec", "read_outputs"]
