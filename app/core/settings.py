"""The one source of defaults: what the pipeline makes and how, which the app reads too (block size, grids,
the embedded family). Plain configuration, as in nanoGPT: change a field, and every step whose recipe it enters
is redone by the next `python -m app.make.pipeline`."""
from dataclasses import dataclass, field

from . import paths, smollm2

# The embedded base family: one GPT-2 architecture in three sizes, smallest first, all sharing models/tokenizer.
BASE_SIZES = {
    "small": dict(n_layer=2, n_embd=128, n_head=4),
    "medium": dict(n_layer=4, n_embd=192, n_head=6),
    "large": dict(n_layer=6, n_embd=256, n_head=8),
}

# A decoder that this pipeline did not make (no memdec.json) is served with these until someone tunes it.
UNTUNED_MEMORY = {"alpha": 0.6, "knn_temperature": 10.0, "knn_k": 64}


def embedded_bases() -> dict:
    return {size: paths.model_folder("base", size) for size in BASE_SIZES}


@dataclass
class Settings:
    family: str = paths.EMBEDDED  # where its models, controls, targets and results live (app.core.paths)
    domains: tuple = paths.DOMAINS
    bases: dict = field(default_factory=embedded_bases)  # name -> folder or hub id, smallest to largest
    key: str = "large"  # the base whose hidden states are the datastore keys: the largest, as in the paper
    init: str = "small"  # the base each decoder starts from: the smallest, as in the paper
    # or, where no base of the family is small enough, a fresh decoder of this shape (fields of the key model's config)
    decoder_shape: dict | None = None
    dapt: bool = True  # DAPT of the key model as a control (too slow to train for a 135M base on a CPU)
    ablation: bool = True  # KL-only decoders beside KL + CE and CE only
    # the decoders every table compares the Memory Decoder with (app.make.pipeline.LOSSES): CE only, and distilled
    # from the key model's own distribution
    controls: tuple = ("ce", "distil")
    # corpora (characters) and tokenizer
    train_chars: int = 500_000
    eval_chars: int = 60_000
    general_chars: int = 30_000_000
    vocab_size: int = 8192
    tokenizer_sample_chars: int = 8_000_000
    # the embedded bases
    context: int = 256
    # long enough that the general validation loss flattens (models/base-*/loss.csv), within the 2-hour pipeline
    base_steps: dict = field(default_factory=lambda: {"small": 1000, "medium": 800, "large": 1200})
    general_held_out: int = 32_768  # the general stream's last tokens: the bases' validation curve
    general_eval_chars: int = 40_000  # the general corpus's last documents, scored for what a memory costs there
    base_batch_size: int = 32
    base_lr: float = 2e-3
    base_warmup: int = 100  # steps of linear warm-up, at most a tenth of the run
    # datastores, kNN targets and Memory Decoders
    block: int = 128  # training, datastores and evaluation all cut token streams into blocks of this length
    k: int = 128
    beta: float = 0.5
    # every decoder, its controls (CE only, KL only) and DAPT of the key model train on the same token budget
    memdec_steps: int = 200
    memdec_lr: float = 1e-3  # the paper's rate for GPT-2 decoders
    memdec_warmup: int = 50
    batch_size: int = 16
    seeds: tuple = (0, 1, 2)
    # DAPT's learning rate: the one of these whose seed-0 model is best on validation at memdec_steps, then used for
    # every seed and budget
    dapt_lrs: tuple = (3e-4, 1e-3, 3e-3)
    dapt_lr_edge: float = 1e-2  # tried too when the grid's best is its largest rate
    # longer budgets: these losses again at more steps, and DAPT at dapt_budgets, on budget_domains with budget_seeds,
    # to see which comparisons hold as they train. What 2 cores allow beside the 200-step runs: 800 steps on law
    # (an hour); `--budgets 800,3200` adds 3,200-step decoders (25 minutes each on one core), and a 3,200-step DAPT
    # run (with dapt_budgets (800, 3200)) 74 minutes more
    budgets: tuple = (800,)
    dapt_budgets: tuple = (800,)
    budget_losses: tuple = ("memdec", "distil", "ce")
    budget_domains: tuple = ("law",)
    budget_seeds: tuple = (0,)
    # evaluation: sliding windows of `block` tokens every `eval_stride`, so each scored token has half a window
    eval_stride: int = 64
    # tuning grids on validation: the mixing weight (extended when its best is at an edge) and the kNN temperature
    alphas: tuple = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    alpha_edges: tuple = ((0.05, 0.02), (0.95, 0.98))  # tried below / above the grid when its best is its end
    temperatures: tuple = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0)

    def start(self, init: str | None = None):
        """The folder a decoder starts from: the base named init; by default the family's fresh decoder when it has
        a decoder shape, else its smallest base."""
        if init:
            return self.bases[init]
        return paths.decoder_start_folder(self.family) if self.decoder_shape else self.bases[self.init]


# SmolLM2: one real pretrained base (135M, from the package registry) and decoders of their own shape. On 2 CPU cores
# the 49,152-token output layer is most of a training step's work: doubling the layers costs 14%, widening by half
# 28% (tools/benchmark_decoder_shapes.py); so the decoder is narrow and deep: 8 layers of width 128 are 8.0M
# parameters, 16 MB in fp16, and its embedding starts from the base's own, projected onto its 128 main directions
# (make.decoder_start).
SMOLLM2_DECODER = dict(hidden_size=128, num_hidden_layers=8, num_attention_heads=4, num_key_value_heads=4,
                       head_dim=32, intermediate_size=384)


def smollm2_settings() -> Settings:
    """SmolLM2-135M-Instruct is the key model and the base; one seed per decoder, which is what 2.5 hours on 2 cores
    allow beside the keys and targets of its 135M parameters."""
    return Settings(family="smollm2", bases={smollm2.NAME: smollm2.base_folder()}, key=smollm2.NAME,
                    init="", decoder_shape=SMOLLM2_DECODER, dapt=False, ablation=False, seeds=(0,), memdec_steps=200,
                    memdec_lr=3e-3, memdec_warmup=30, controls=("ce",), budgets=())


FAMILIES = {paths.EMBEDDED: Settings, "smollm2": smollm2_settings}


def warmup(cap: int, steps: int) -> int:
    """Warm-up steps of a run: the cap, or a tenth of a short run."""
    return min(cap, steps // 10)
