"""Typed, validated configuration: dataclass defaults, YAML presets, `key=value` overrides.

A run's configuration is built as: defaults <- presets (in order) <- overrides. Unknown keys
and invalid values raise ConfigError with one line naming the key and the valid choices.
"""

from __future__ import annotations

import difflib
import functools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from equissl.app.cpu import ALLOCATORS
from equissl.errors import ConfigError
from equissl.warn import warn

CONFIG_DIR = Path(__file__).parents[1] / "configs"  # equissl/configs: package data


@dataclass
class DataConfig:
    name: str = "digits"  # digits | cifar10 | cifar100 | stl10 | imagefolder | mnist |
    #   fashionmnist | kmnist | svhn | tinyimagenet
    path: str | None = None  # file or folder of the source (not needed for digits)
    cache_dir: str | None = None  # decoded uint8 arrays, keyed by source and options; null:
    #   $EQUISSL_CACHE, else $XDG_CACHE_HOME/equissl, else ~/.cache/equissl
    limit: int | None = None  # class-balanced subset of the training split
    test_limit: int | None = None  # class-balanced subset of the test split
    channels: int = 3  # 3: grayscale is replicated; 1: colour is converted to luminance
    size: int | None = None  # resize once after decoding; null keeps the source size
    unlabeled: bool = False  # STL-10: add the unlabeled split to pretraining
    device_resident: str = "auto"  # auto | always | never: keep the uint8 set on the device
    labels: str = "fine"  # cifar100: fine (100 classes) | coarse (the 20 superclasses)
    stream: str = "auto"  # auto | true | false: read shards in DataLoader workers instead of
    #   holding the decoded set (imagefolder); auto streams a shard folder or a set too large
    workers: int = 2  # streaming: DataLoader processes decoding and cropping (0: the training
    #   process itself); also how an epoch is dealt out, so a resumed run keeps it


@dataclass
class AugmentConfig:
    pipeline: str = "simclr"  # the invariance views' augmentation: simclr | cropflip | none
    invariance: str | None = None  # deprecated spelling of augment.pipeline (read until the
    #   next release)
    size: int | None = None  # output size of the invariance views; null: the data size
    scale_min: float = 0.2
    scale_max: float = 1.0
    flip_p: float = 0.5
    jitter: list[float] = field(default_factory=lambda: [0.4, 0.4, 0.4, 0.1])
    jitter_p: float = 0.8
    gray_p: float = 0.2
    blur_p: list[float] = field(default_factory=lambda: [0.0, 0.0])  # Gaussian blur probability
    #   of view 1 and view 2 (E-SSL's ImageNet code: 1.0 / 0.1; CARE's CIFAR code: 0.5 / 0.5)
    blur_kernel: int | None = None  # odd kernel size; null: SimCLR's 10% of the view size, odd
    blur_sigma: list[float] = field(default_factory=lambda: [0.1, 2.0])  # sigma ~ U(lo, hi)
    solarize_p: list[float] = field(default_factory=lambda: [0.0, 0.0])  # per view (E-SSL's
    #   ImageNet code: 0 / 0.2)
    term_blur_p: float = 0.0  # blur probability of the equivariance terms' views (E-SSL's
    #   ImageNet rotation crops: 0.1); same kernel and sigma range
    term_solarize_p: float = 0.0  # solarisation probability of the terms' views
    interpolation: str = "bilinear"  # resampling of the invariance views' crops: bilinear |
    #   bicubic (PIL's antialiased bicubic, E-SSL's ImageNet views); the terms' crops: bilinear


@dataclass
class EquivarianceConfig:
    transform: str = "rotation"  # a transformation (equissl.transforms), a product "a+b", or
    #                              (mode care) `augment`: the whole base augmentation
    role: str = "equivariance"  # equivariance: learned by `mode` | augment: applied at random to
    #   the invariance views, as one more augmentation | none: ignored (deprecated spellings:
    #   invariance, off)
    mode: str = "predict"  # predict: CE on the label | relative: the element relating two views
    #                        | regress: crop/jitter parameters of two views (AugSelf)
    #                        | care: Gram matching, one pair of elements per chunk (CARE)
    heads: str = "joint"  # product transformations: joint (one head, product labels) | separate
    weight: float = 0.4  # lambda
    augment: str = "simclr"  # base augmentation of the transformed view
    size: int | None = None  # crop size of the transformed view; null: size_ratio x data size
    size_ratio: float = 0.5  # E-SSL's small crops: 16x16 on 32x32 CIFAR
    scale_min: float = 0.2  # RandomResizedCrop area range of the transformed view
    scale_max: float = 1.0  # (as a fraction of the image)
    expand: bool = True  # every element per image (E-SSL's 4 rotations); false: one sampled
    head_hidden: int | None = None  # hidden width of the head; null: 4 x backbone features
    head_bottleneck: int | None = None  # a Linear(hidden, b)-LayerNorm before the output layer
    #   (E-SSL's ImageNet rotation head: 2048-2048-2048-128-4); null: none
    head_second_relu: bool = True  # E-SSL's head: Linear-LN-ReLU-Linear-LN-ReLU-Linear with
    #   SimCLR; its SimSiam head has no second ReLU (false)
    head_form: str = "essl"  # predict/relative heads: essl (the LayerNorm head above) | mlp:
    #   Linear(in, hidden)-ReLU-Linear(hidden, K), biases, no norm (Wang et al.'s projector)
    chunks: int = 16  # care: blocks of the batch whose Gram matrices are matched
    pair_per: str = "chunk"  # care: chunk (each chunk draws its own pair (t1, t2)) | batch (one
    #   pair for the whole batch each step, as CARE's official vmap(randomness='same'))
    uniformity: float = 0.0  # care: weight of a uniformity term on its embeddings (non-collapse
    #                          when there is no invariance loss: CARE's "equivariance only")
    uniformity_form: str = "infonce"  # infonce: CARE's official `uniformity` subtype, mean log
    #   sum exp(z_i . z_k / t) over the 2N-2 negatives | wang_isola: log mean exp(-2|z_i - z_j|^2)
    uniformity_temperature: float = 0.5  # t of the infonce form (CARE's --temperature)


@dataclass
class MethodConfig:
    invariance: str = "simclr"  # simclr | moco | simsiam | byol | barlow_twins | vicreg | none
    temperature: float = 0.5  # SimCLR
    negatives: str = "both_views"  # SimCLR: both_views (the SimCLR paper's NT-Xent, 2N-2
    #   negatives) | other_view (E-SSL's official InfoNCE: each anchor against the other view's
    #   N embeddings, symmetrised)
    view_passes: str = "joint"  # joint: both invariance views in one backbone pass (shared
    #   BatchNorm statistics) | separate: one pass per view (also a care term's two copies), as
    #   E-SSL's and CARE's official code
    proj_hidden: int | None = None  # null: the method's recipe, scaled with the backbone width
    proj_dim: int | None = None  # null: the method's recipe, scaled with the backbone width
    proj_layers: int | None = None  # linear layers of the projector; null: the recipe's (2 for
    #   SimCLR/SimSiam/BYOL, 3 for Barlow Twins/VICReg); E-SSL's ImageNet projectors have 3
    proj_last_affine: bool = False  # SimCLR/SimSiam: an affine last BatchNorm (E-SSL's ImageNet
    #   SimCLR projector); false: E-SSL's CIFAR and SimSiam's plain BatchNorm
    pred_hidden: int | None = None  # SimSiam/BYOL predictor; null: the method's recipe
    ema: float = 0.99  # BYOL: base momentum of the target, raised to 1 on a cosine schedule
    barlow_lambda: float = 0.0051  # Barlow Twins: weight of the off-diagonal terms
    barlow_scale: float = 0.1  # Barlow Twins: loss scale (solo-learn's CIFAR recipe)
    vicreg_weights: list[float] = field(default_factory=lambda: [25.0, 25.0, 1.0])  # sim/var/cov
    proj_norm: str = "auto"  # SimCLR/MoCo projector's BatchNorm: auto (the method's recipe:
    #   both for SimCLR, none for MoCo) | both (E-SSL's) | hidden (SimCLR's and CARE's CIFAR
    #   Linear-BN-ReLU-Linear) | none (MoCo-v2's Linear-ReLU-Linear)
    moco_queue: int = 65536  # MoCo: negative keys kept from earlier batches
    moco_momentum: float = 0.999  # MoCo: key encoder <- m x key + (1 - m) x query, every step
    classifier: str = "detached"  # online classifier: detached | joint (+w x class CE reaches
    #                               the encoder) | eliminate (-w x class CE reaches the encoder)
    class_weight: float = 1.0  # w of the joint / eliminate modes
    classifier_grad: str = "online"  # online: the classifier learns from its own CE on detached
    #   features; the +-w class term reaches the encoder only | signed: the +-w term reaches the
    #   classifier too, as Wang et al.'s verification.py (joint: only w CE; eliminate: -w CE plus
    #   (1 - w) CE on detached features, the sum of its two steps)
    classifier_optim: str = "own"  # own: lr optim.classifier_lr, no weight decay | shared: the
    #   encoder's lr, schedule and weight decay (Wang et al.: one SGD over all parameters)
    equivariance: list[EquivarianceConfig] = field(default_factory=list)


@dataclass
class BackboneConfig:
    name: str = "resnet18"  # resnet18 | resnet34 | resnet50 | eqresnet18 | eqresnet34
    stem: str = "cifar"  # cifar (3x3 stride 1, no max-pool) | imagenet (7x7 stride 2, max-pool)
    width: int = 64  # channels of the first stage (64 is the standard ResNet); an EqResNet
    #                  matches the parameter count of the ResNet of this width
    group: str = "c4"  # EqResNet: c4 (90-degree rotations, p4) | d4 (and mirrors, p4m)
    fields: int | None = None  # EqResNet: fields (|G| channels each) of the first stage; null:
    #   width/sqrt|G|
    downsample: str = "avg"  # EqResNet stride 2: avg (a stride-2 filter equal to conv + 2x2
    #   average pooling, exact on every size) | max (conv, then 2x2 max pooling: Wang et al.)
    dropout: float = 0.0  # EqResNet: dropout after the first conv of every block (Wang: 0.2)
    pool: str = "mean"  # EqResNet: mean (space and group averaged: invariant) | group_max (max
    #   over the group, no spatial pooling: Wang et al.'s 4,096 features, not invariant)
    zero_init_residual: bool = False  # ResNet: the last BatchNorm of each residual block starts
    #   at 0, torchvision's option (E-SSL's ImageNet backbone)
    frozen: bool = False  # weights not trained; in training mode its BatchNorm running statistics
    #   still follow the data (Wang et al.'s random-init baseline)


@dataclass
class OptimConfig:
    name: str = "sgd"  # sgd | lars | adam (CARE's official optimiser; L2 weight decay)
    nesterov: bool = False  # sgd: Nesterov momentum (Wang et al.'s code)
    schedule: str = "warmup_cosine"  # warmup_cosine | constant (CARE's Adam) | multistep
    milestones: list[float] = field(default_factory=list)  # multistep: epochs where lr x gamma
    gamma: float = 0.1  # multistep: the factor at each milestone
    bias_lr: float | None = None  # biases and norm parameters train at this base lr (x
    #   batch/256), same schedule (Barlow Twins' ImageNet recipe: 0.0048 beside lr 0.2); null: lr
    fixed_predictor_lr: bool = False  # SimSiam/BYOL: the predictor keeps the base lr, no
    #   schedule (SimSiam's --fix-pred-lr)
    lr: float = 0.03  # base learning rate, scaled by batch_size / 256
    momentum: float = 0.9  # SGD / LARS momentum
    weight_decay: float = 5e-4  # L2 on the SSL parameters (LARS: on >1-D weights only)
    warmup_epochs: float = 10.0  # warmup_cosine: linear warm-up from 0 over these epochs
    batch_size: int = 512  # global batch size (split across processes)
    epochs: int = 800  # 0: no training (a randomly initialised encoder is evaluated)
    classifier_lr: float = 0.1  # online linear classifier (detached features)
    lars_eta: float = 0.02  # LARS trust coefficient (solo-learn's CIFAR value; FAIR's and
    #                         E-SSL's ImageNet code use 0.001)
    end_lr: float = 0.0  # the cosine ends at end_lr x the peak (E-SSL's ImageNet code: 0.001)


@dataclass
class TrainerConfig:
    accelerator: str = "auto"  # auto | cpu | gpu
    devices: int = 1  # processes (GPUs) per node
    num_nodes: int = 1  # nodes (the global batch is split over devices x num_nodes)
    strategy: str = "auto"  # auto | ddp
    precision: str = "auto"  # auto (bf16-mixed on GPU, 32 on CPU) | 32 | bf16-mixed | 16-mixed
    channels_last: bool = True  # conv layout: GPU; CPU with a plain ResNet (not EqResNet)
    compile: bool = False  # torch.compile the backbone (checkpoint keys unchanged)
    sync_batchnorm: bool = False  # DDP: BatchNorm statistics over all processes
    log_every_n_steps: int = 20  # steps between metrics.csv rows (and non-finite checks)
    progress_bar: bool = True  # a bar on a terminal; else (or false) a line per epoch
    threads: int | None = None  # CPU threads for torch; null leaves the default
    logger: str = "tensorboard"  # tensorboard | csv | wandb | mlflow, beside metrics.csv (csv:
    #   metrics.csv alone); wandb and mlflow need pip install 'equissl[wandb]' / 'equissl[mlflow]'
    project: str = "equissl"  # the W&B project or MLflow experiment of trainer.logger
    cpu_allocator: str = "reuse"  # on the CPU: reuse (freed activations stay in the heap for
    #   the next step: far fewer page faults, 15-25 % more peak memory) | system (libc's default)


@dataclass
class AugmentedLinearConfig:
    """The probe trained on augmented views through the frozen encoder every epoch (defaults:
    E-SSL's CIFAR-10 linear evaluation, cifar10/main.py eval_loop)."""

    optimizer: str = "sgd"  # sgd (momentum) | adam (CARE's probe) | lars (trust 0.001 on the
    #   weight: SimSiam's ImageNet probe, LARC)
    lr: float = 30.0
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"  # cosine: per step to 0, no warm-up | constant | multistep
    milestones: list[int] = field(default_factory=list)  # multistep: epochs where lr x 0.1
    epochs: int = 100
    batch_size: int = 256
    seeds: int = 5
    drop_last: bool = True  # drop the last partial training batch (E-SSL's loader)
    train_augment: str = "cropflip"  # cropflip | simclr (CARE: with jitter, gray, blur) | none
    size: int | None = None  # training views' size; null: test_crop (or the image size)
    scale_min: float = 0.08  # RandomResizedCrop's default scale (0.08, 1)
    interpolation: str = "bicubic"  # training crops and test resize: bicubic | bilinear
    blur_p: float = 0.0  # train_augment=simclr: blur probability (CARE: 0.5, kernel 3)
    blur_kernel: int | None = None  # odd; null: 10% of the image size, made odd
    test_resize: int | None = 36  # Resize(shorter side) of the test images; null: none
    test_crop: int | None = 32  # then CenterCrop; null: none
    encoder_bn: str = "eval"  # eval (E-SSL) | train: batch statistics, as CARE's net.train()


@dataclass
class LinearEvalConfig:
    protocol: str = "cached"  # cached: the probe on cached features only | augmented: also the
    #   probe on augmented views every epoch (`augmented`), reported as linear_aug_* (GPU cost)
    augmented: AugmentedLinearConfig = field(default_factory=AugmentedLinearConfig)
    solver: str = "adamw"  # adamw: mini-batch, seeds x epochs | lbfgs: the full-batch optimum
    #                        in seconds (seeds and epochs do not apply)
    seeds: int = 3
    epochs: int = 100
    batch_size: int = 1024
    lr: float = 0.01
    weight_decay: float = 1e-5


@dataclass
class FinetuneConfig:
    epochs: int = 0  # fine-tune the whole encoder on each low-label split; 0: linear probe only
    lr: float = 0.05  # SGD (Nesterov momentum 0.9), cosine decay, scaled by batch_size / 256
    batch_size: int = 256
    weight_decay: float = 5e-4


@dataclass
class TransferConfig:
    name: str = ""  # a second dataset probed with the frozen encoder ("": none); any reader
    path: str | None = None
    limit: int | None = None  # class-balanced subsets of its splits
    test_limit: int | None = None


@dataclass
class EvalDataConfig:
    name: str = ""  # a labelled set to evaluate on when the pretraining data has no labels (a
    #   flat image folder): its splits read like the pretraining images (channels, size); any
    #   reader; "": the evaluation is skipped with a note
    path: str | None = None  # its file or folder
    limit: int | None = None  # class-balanced subsets of its splits
    test_limit: int | None = None  # (as data.limit, data.test_limit)


@dataclass
class KnnEvalConfig:
    k: int = 200  # neighbours voting (cosine similarity of the frozen features)
    temperature: float = 0.1  # votes weighted by exp(similarity / temperature)


@dataclass
class EvalConfig:
    at_end: bool = True
    batch_size: int = 512
    transform_limit: int | None = None  # test images for each transformation head's accuracy
    equivariance: list[str] = field(default_factory=list)  # transformations to probe (linear and
    #                                  MLP accuracy, invariance score) from frozen features
    equivariance_limit: int = 5000  # images per split for those probes
    equivariance_mlp_epochs: int = 30  # epochs of the MLP probe (Adam, batch 256)
    geometry: list[str] = field(default_factory=list)  # transformations g whose linear map
    #                     f(g x) ~ A f(x) is fitted: equivariance/orthogonality errors (CARE)
    geometry_limit: int = 4000  # test images for those fits (half fit, half scored)
    hue_sensitivity: bool = False  # cos(f(x), f(hue-shifted x)) for shifts 0..180 degrees, PNG
    corruptions: list[str] = field(default_factory=list)  # CIFAR-10-C-style corruptions (or
    #                     [all]) at severities 1-5: linear-probe accuracy table and heat map
    corruption_limit: int = 2000  # test images per corruption and severity
    low_label: list[float] = field(default_factory=list)  # label fractions, e.g. [0.01, 0.1]:
    #                     class-balanced seeded subsets of the training split
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)
    data: EvalDataConfig = field(default_factory=EvalDataConfig)
    embedding_plot: bool = False  # t-SNE (and UMAP when installed) map of test features and a
    #                     nearest-neighbour retrieval grid, as PNGs
    embedding_limit: int = 2000  # test images in the map
    linear: LinearEvalConfig = field(default_factory=LinearEvalConfig)
    knn: KnnEvalConfig = field(default_factory=KnnEvalConfig)


@dataclass
class Config:
    name: str = "run"  # the run folder is out_dir/name; `equissl pretrain` without name=
    #   gives each run its own: <presets>-<date>-<time>
    out_dir: str = "runs"  # the folder that holds the run folders
    seed: int = 0  # seeds the initialisation, the views of every step and the evaluation
    resume: str = "auto"  # auto: continue from runs/<name>/last.ckpt | never
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


@functools.cache
def choices() -> dict[str, tuple[Any, ...]]:
    """The valid values of each key with a fixed set. Datasets, augmentations, backbones and
    groups are their registries' names, imported here on first use (they load torch), so that
    `import equissl.app.config` stays light."""
    from equissl.augment.pipelines import PIPELINES
    from equissl.data.load import READERS
    from equissl.models.backbones import BACKBONES
    from equissl.models.groups import GROUP_NAMES

    return {
        "resume": ("auto", "never"),
        "data.name": tuple(READERS),
        "eval.data.name": ("", *READERS),
        "data.labels": ("fine", "coarse"),
        "data.channels": (1, 3),
        "data.device_resident": ("auto", "always", "never"),
        "data.stream": ("auto", "true", "false"),
        "augment.pipeline": PIPELINES,
        "augment.interpolation": ("bilinear", "bicubic"),
        "method.invariance": (
            "simclr",
            "moco",
            "simsiam",
            "byol",
            "barlow_twins",
            "vicreg",
            "none",
        ),
        "method.proj_norm": ("auto", "both", "hidden", "none"),
        "method.classifier": ("detached", "joint", "eliminate"),
        "method.negatives": ("both_views", "other_view"),
        "method.view_passes": ("joint", "separate"),
        "method.equivariance.*.role": ROLES,
        "method.equivariance.*.mode": ("predict", "relative", "regress", "care"),
        "method.equivariance.*.heads": ("joint", "separate"),
        "method.equivariance.*.uniformity_form": ("infonce", "wang_isola"),
        "method.equivariance.*.pair_per": ("chunk", "batch"),
        "method.equivariance.*.augment": PIPELINES,
        "method.equivariance.*.head_form": ("essl", "mlp"),
        "method.classifier_grad": ("online", "signed"),
        "method.classifier_optim": ("own", "shared"),
        "backbone.name": BACKBONES,
        "backbone.group": GROUP_NAMES,
        "backbone.stem": ("cifar", "imagenet"),
        "backbone.downsample": ("avg", "max"),
        "backbone.pool": ("mean", "group_max"),
        "optim.name": ("sgd", "lars", "adam"),
        "optim.schedule": ("warmup_cosine", "constant", "multistep"),
        "eval.linear.solver": ("adamw", "lbfgs"),
        "eval.linear.protocol": ("cached", "augmented"),
        "eval.linear.augmented.optimizer": ("sgd", "adam", "lars"),
        "eval.linear.augmented.schedule": ("cosine", "constant", "multistep"),
        "eval.linear.augmented.train_augment": ("cropflip", "simclr", "none"),
        "eval.linear.augmented.interpolation": ("bilinear", "bicubic"),
        "eval.linear.augmented.encoder_bn": ("eval", "train"),
        "trainer.accelerator": ("auto", "cpu", "gpu", "cuda", "mps"),
        "trainer.strategy": ("auto", "ddp", "ddp_spawn"),
        "trainer.precision": ("auto", "32", "bf16-mixed", "16-mixed"),
        "trainer.logger": ("tensorboard", "csv", "wandb", "mlflow"),
        "trainer.cpu_allocator": ALLOCATORS,
    }


POSITIVE = (
    "optim.lr",
    "optim.batch_size",
    "method.temperature",
    "method.moco_queue",
    "backbone.width",
    "trainer.devices",
    "trainer.num_nodes",
    "eval.batch_size",
    "eval.linear.seeds",
    "eval.linear.epochs",
    "eval.linear.batch_size",
    "eval.linear.lr",
    "eval.linear.augmented.lr",
    "eval.linear.augmented.epochs",
    "eval.linear.augmented.batch_size",
    "eval.linear.augmented.seeds",
    "eval.knn.k",
    "eval.knn.temperature",
    "eval.equivariance_limit",
    "eval.geometry_limit",
    "eval.corruption_limit",
    "eval.embedding_limit",
    "eval.finetune.lr",
    "eval.finetune.batch_size",
    "eval.equivariance_mlp_epochs",
)
NON_NEGATIVE = (
    "optim.lars_eta",
    "data.workers",
    "optim.end_lr",
    "optim.epochs",
    "optim.warmup_epochs",
    "optim.momentum",
    "optim.weight_decay",
    "optim.gamma",
    "eval.linear.weight_decay",
    "eval.linear.augmented.weight_decay",
    "eval.linear.augmented.momentum",
    "eval.finetune.weight_decay",
    "eval.finetune.epochs",
)  # 0 epochs: a randomly initialised encoder
# Null means automatic (or none); 0 meant the same until 0.1 and still does, with a one-line note.
NULL_AUTO = (
    "data.size",
    "augment.size",
    "augment.blur_kernel",
    "method.proj_hidden",
    "method.proj_dim",
    "method.proj_layers",
    "method.pred_hidden",
    "method.equivariance.*.size",
    "method.equivariance.*.head_hidden",
    "method.equivariance.*.head_bottleneck",
    "backbone.fields",
    "optim.bias_lr",
    "trainer.threads",
    "eval.linear.augmented.size",
    "eval.linear.augmented.blur_kernel",
    "eval.linear.augmented.test_resize",
    "eval.linear.augmented.test_crop",
)
_noted: set[str] = set()
ROLES = ("equivariance", "augment", "none")
OLD_ROLES = {"invariance": "augment", "off": "none", "False": "none", "false": "none"}


def concrete_keys(cfg: DictConfig, key: str) -> list[str]:
    """`key`, or with `head.*.tail` one key per item of the list `head`."""
    if ".*." not in key:
        return [key]
    head, tail = key.split(".*.")
    return [f"{head}.{i}.{tail}" for i in range(len(OmegaConf.select(cfg, head) or []))]


def null_zero_autos(cfg: DictConfig, *, note: bool = True) -> None:
    """The old spelling 0 of NULL_AUTO's fields, read as null (once a process, a note saying so
    unless `note` is False: a configuration saved by an older run)."""
    for pattern in NULL_AUTO:
        for key in concrete_keys(cfg, pattern):
            value = OmegaConf.select(cfg, key)
            if value is None or isinstance(value, bool) or value != 0:
                continue
            OmegaConf.update(cfg, key, None)
            if note:  # one note for every item of a list
                _note_once(f"{key}=0", f"{key}=null (automatic)", once=pattern)


def preset_names() -> list[str]:
    """Names of the YAML presets shipped in configs/ (without folder or suffix)."""
    return sorted({p.stem for p in CONFIG_DIR.rglob("*.yaml")})


def sweep_path(name: str) -> Path:
    """A sweep file by name: configs/experiments/ and configs/sweeps/ first (an experiment may
    share its name with a method preset: `care`), then any preset or a path."""
    for folder in ("experiments", "sweeps"):
        path = CONFIG_DIR / folder / f"{name}.yaml"
        if path.is_file():
            return path
    return find_preset(name)


def find_preset(name: str) -> Path:
    """A preset by name (searched in configs/) or by path to a YAML file."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ConfigError(f"config file not found: {name}")
        return path
    matches = sorted(CONFIG_DIR.rglob(f"{name}.yaml"))
    if len(matches) > 1:  # an experiment named as a method: the method preset
        matches = [m for m in matches if m.parent.name != "experiments"]
    if len(matches) != 1:
        close = difflib.get_close_matches(name, preset_names(), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(f"unknown preset '{name}'{hint}; presets: {', '.join(preset_names())}")
    return matches[0]


def _load_yaml(path: Path) -> DictConfig:
    try:
        loaded = OmegaConf.load(path)
    except Exception as exc:  # noqa: BLE001 - YAML errors come in many types
        raise ConfigError(f"cannot read config {path}: {str(exc).splitlines()[0]}") from None
    if not isinstance(loaded, DictConfig):
        raise ConfigError(f"config {path} must be a mapping of keys to values")
    return loaded


def _key_error(
    exc: OmegaConfBaseException, schema: DictConfig, key: str | None = None
) -> ConfigError:
    key = key or getattr(exc, "full_key", None) or "?"
    parent = key.rsplit(".", 1)[0] if "." in key else ""
    node = OmegaConf.select(schema, parent) if parent else schema
    valid = sorted(node.keys()) if isinstance(node, DictConfig) else []
    leaf = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(leaf, [str(v) for v in valid], n=1)
    hint = f" (did you mean {parent + '.' if parent else ''}{close[0]}?)" if close else ""
    where = f" in '{parent}'" if parent else ""
    return ConfigError(
        f"unknown config key '{key}'{hint}; valid keys{where}: {', '.join(map(str, valid))}"
    )


def _merge(base: DictConfig, other: DictConfig | ListConfig, what: str) -> DictConfig:
    try:
        return OmegaConf.merge(base, other)  # type: ignore[return-value]
    except ConfigKeyError as exc:
        raise _key_error(exc, base) from None
    except ValidationError as exc:
        key = getattr(exc, "full_key", "?")
        raise ConfigError(f"bad value for '{key}' in {what}: {str(exc).splitlines()[0]}") from None
    except (OmegaConfBaseException, TypeError, ValueError) as exc:
        raise ConfigError(f"bad config in {what}: {str(exc).splitlines()[0]}") from None


# Short keys: `backbone=eqresnet18 group=c4` sets backbone.name and backbone.group.
SHORT_KEYS = {"backbone": "backbone.name", "group": "backbone.group"}


def parse_overrides(args: list[str]) -> list[tuple[str, Any]]:
    """`key=value` strings into (key, value) pairs, values parsed as YAML (short keys
    expanded)."""
    pairs = []
    for arg in args:
        if "=" not in arg or arg.startswith("="):
            raise ConfigError(f"expected key=value, got '{arg}'")
        key, value = arg.split("=", 1)
        if key in SHORT_KEYS:
            arg = f"{SHORT_KEYS[key]}={value}"
        try:
            parsed = OmegaConf.from_dotlist([arg])
        except Exception as exc:  # noqa: BLE001 - OmegaConf and the YAML parser raise many kinds
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ConfigError(
                f"cannot parse '{arg}': {first}; quote the whole item and close its brackets, "
                'e.g. "method.equivariance=[{transform: rotation}]"'
            ) from None
        key = arg.split("=", 1)[0]
        pairs.append((key, OmegaConf.select(parsed, key)))
    return pairs


_MISSING = object()


def apply_overrides(cfg: DictConfig, args: list[str]) -> DictConfig:
    """Set each `key=value` on cfg; the key must exist (list items by index: a.0.b)."""
    for key, value in parse_overrides(args):
        if OmegaConf.select(cfg, key, default=_MISSING) is _MISSING:
            parent = key.rsplit(".", 1)[0] if "." in key else ""
            node = OmegaConf.select(cfg, parent, default=None) if parent else cfg
            if isinstance(node, ListConfig):
                raise ConfigError(f"unknown config key '{key}': '{parent}' has {len(node)} items")
            if node is None:
                raise ConfigError(f"unknown config key '{key}': '{parent}' does not exist")
            raise _key_error(ConfigKeyError(key), cfg, key)
        try:
            OmegaConf.update(cfg, key, value, merge=isinstance(value, (DictConfig, ListConfig)))
        except ValidationError as exc:
            raise ConfigError(f"bad value for '{key}': {str(exc).splitlines()[0]}") from None
        except OmegaConfBaseException as exc:
            raise ConfigError(f"cannot set '{key}': {str(exc).splitlines()[0]}") from None
    return cfg


def _note_once(old: str, new: str, once: str | None = None) -> None:
    """A one-line note that `old` is deprecated, once a process for `once` (default: old)."""
    once = old if once is None else once
    if once not in _noted:
        _noted.add(once)
        warn(f"{old} is deprecated; write {new}; the old spelling is read until the next release")


def _normalize(cfg: DictConfig) -> None:
    """The deprecated spellings, read as their new ones with a note."""
    null_zero_autos(cfg)
    if cfg.augment.invariance is not None:
        _note_once("augment.invariance", "augment.pipeline")
        cfg.augment.pipeline, cfg.augment.invariance = cfg.augment.invariance, None
    for term in cfg.method.equivariance:
        # YAML 1.1 reads a bare `off` as false, which a string field stores as "False".
        new = OLD_ROLES.get(str(term.role))
        if new is not None:
            _note_once(f"method.equivariance.*.role={term.role}", f"role={new}")
            term.role = new
    if str(cfg.data.stream) in ("True", "False"):  # data.stream=true arrives as "True"
        cfg.data.stream = str(cfg.data.stream).lower()


def upgrade_saved(saved: dict[str, Any]) -> dict[str, Any]:
    """A configuration saved by an earlier run (a plain tree) in today's spellings: 0 for null
    in NULL_AUTO's fields, augment.invariance as augment.pipeline, the old role names."""
    tree = OmegaConf.create(saved)
    with open_dict(tree):
        null_zero_autos(tree, note=False)
        augment = tree.get("augment") or {}
        if augment.get("invariance") is not None:
            augment["pipeline"] = augment["invariance"]
        if "invariance" in augment:
            del augment["invariance"]
        for term in OmegaConf.select(tree, "method.equivariance") or []:
            term.role = OLD_ROLES.get(str(term.get("role")), term.get("role"))
    return OmegaConf.to_container(tree)  # type: ignore[return-value]


# A run name is one folder under out_dir: no separators, no '.'/'..', no hidden names.
RUN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+=@,-]*")


def _leaves(tree: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(tree, dict):
        return [kv for key, sub in tree.items() for kv in _leaves(sub, f"{prefix}{key}.")]
    if isinstance(tree, list):
        return [kv for i, sub in enumerate(tree) for kv in _leaves(sub, f"{prefix}{i}.")]
    return [(prefix[:-1], tree)]


def _check_finite(cfg: DictConfig) -> None:
    for key, value in _leaves(OmegaConf.to_container(cfg, resolve=True)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"bad value for '{key}': {value}; it must be a finite number")


def _check_name(cfg: DictConfig) -> None:
    name = str(cfg.name)
    if not RUN_NAME.fullmatch(name) or len(name) > 200:
        raise ConfigError(
            f"bad value for 'name': {name!r}; a run name is one folder under out_dir: letters, "
            "digits and _ . + = @ , - (not starting with '.' or '-', no '/')"
        )


def _check_choices(cfg: DictConfig) -> None:
    _normalize(cfg)
    _check_name(cfg)
    _check_finite(cfg)
    for key, valid in choices().items():
        for name in concrete_keys(cfg, key):
            value = OmegaConf.select(cfg, name)
            if value not in valid and str(value) not in map(str, valid):
                shown = ", ".join(str(v) if v != "" else '"" (none)' for v in valid)
                raise ConfigError(f"bad value for '{name}': {value!r}; choose one of {shown}")
    for key in POSITIVE:
        value = OmegaConf.select(cfg, key)
        if value is None or value <= 0:
            raise ConfigError(f"bad value for '{key}': {value!r}; it must be positive")
    for key in NON_NEGATIVE:
        value = OmegaConf.select(cfg, key)
        if value < 0:
            raise ConfigError(f"bad value for '{key}': {value!r}; use 0 or more")
    if cfg.optim.momentum >= 1:
        raise ConfigError(f"bad value for 'optim.momentum': {cfg.optim.momentum}; use 0 <= m < 1")
    if any(m < 0 for m in cfg.optim.milestones):
        raise ConfigError("bad value for 'optim.milestones': epochs of 0 or more")
    nullable = ("data.limit", "data.test_limit", *NULL_AUTO)
    for key in (name for pattern in nullable for name in concrete_keys(cfg, pattern)):
        value = OmegaConf.select(cfg, key)
        if value is not None and value <= 0:
            raise ConfigError(f"bad value for '{key}': {value!r}; it must be positive or null")
    _check_augment(cfg)
    _check_terms(cfg)


def _check_augment(cfg: DictConfig) -> None:
    """Blur and solarisation settings: per-view probabilities, an odd kernel, a sigma range
    (of the pretraining views and of the augmented linear probe)."""
    a = cfg.augment
    for key in ("blur_p", "solarize_p"):
        values = list(a[key])
        if len(values) != 2 or not all(0 <= p <= 1 for p in values):
            raise ConfigError(
                f"bad value for 'augment.{key}': {values}; two probabilities in [0, 1], "
                "one per invariance view"
            )
    for key in ("term_blur_p", "term_solarize_p"):
        if not 0 <= a[key] <= 1:
            raise ConfigError(f"bad value for 'augment.{key}': {a[key]}; a probability in [0, 1]")
    if a.blur_kernel is not None and a.blur_kernel % 2 == 0:
        raise ConfigError(
            f"bad value for 'augment.blur_kernel': {a.blur_kernel}; an odd size, or null for "
            "10% of the view size"
        )
    probe = cfg.eval.linear.augmented
    if not 0 < probe.scale_min <= 1 or not 0 <= probe.blur_p <= 1:
        raise ConfigError("eval.linear.augmented: scale_min in (0, 1] and blur_p in [0, 1]")
    if probe.blur_kernel is not None and probe.blur_kernel % 2 == 0:
        raise ConfigError("bad value for 'eval.linear.augmented.blur_kernel': odd, or null")
    sigma = list(a.blur_sigma)
    if len(sigma) != 2 or not 0 < sigma[0] <= sigma[1]:
        raise ConfigError(
            f"bad value for 'augment.blur_sigma': {sigma}; [lo, hi] with 0 < lo <= hi"
        )


CONTINUOUS = ("crop", "jitter")  # view parameters a `regress` term predicts
AUGMENT = "augment"  # a `care` term whose transformation is its whole base augmentation


def _check_care(cfg: DictConfig, term: DictConfig, key: str, parts: list[str]) -> None:
    """Settings under which a CARE term would silently learn nothing or collapse."""
    processes = cfg.trainer.devices * cfg.trainer.num_nodes
    if cfg.optim.batch_size // processes < 2 * term.chunks:
        raise ConfigError(
            f"'{key}.chunks={term.chunks}' leaves fewer than 2 images per chunk in a batch of "
            f"{cfg.optim.batch_size // processes} per process; lower chunks or raise the batch"
        )
    if parts == [AUGMENT] and term.augment == "none":
        raise ConfigError(
            f"'{key}': transform=augment with augment=none gives two identical copies; "
            "use augment=simclr or cropflip"
        )
    if cfg.method.invariance == "none" and term.uniformity == 0:
        raise ConfigError(
            f"'{key}': a care term without an invariance loss collapses; set "
            f"{key}.uniformity (e.g. 1.0, preset care-only)"
        )


def _check_moco(cfg: DictConfig) -> None:
    m = cfg.method
    if not 0 <= m.moco_momentum <= 1:
        raise ConfigError(f"bad value for 'method.moco_momentum': {m.moco_momentum}; use 0..1")
    if m.invariance != "moco":
        return
    if m.moco_queue < cfg.optim.batch_size:
        raise ConfigError(
            f"method.moco_queue={m.moco_queue} is smaller than optim.batch_size="
            f"{cfg.optim.batch_size}; a step's keys must fit in the queue"
        )
    if any(t.mode == "regress" and t.role == "equivariance" for t in m.equivariance):
        raise ConfigError(
            "method.invariance=moco encodes one query view; a regress term needs both "
            "(use simclr or another invariance method)"
        )


def _check_terms(cfg: DictConfig) -> None:
    from equissl.transforms import TRANSFORMS

    active = [t for t in cfg.method.equivariance if t.role != "none"]
    predicted = [t for t in active if t.role == "equivariance"]
    if cfg.method.invariance == "none" and not predicted:
        raise ConfigError(
            "method.invariance=none needs at least one method.equivariance term with "
            "role=equivariance; set method.invariance=simclr or add a term (preset esimclr)"
        )
    for i, term in enumerate(cfg.method.equivariance):
        key = f"method.equivariance.{i}"
        valid = CONTINUOUS if term.mode == "regress" and term.role == "equivariance" else TRANSFORMS
        if term.mode == "care":
            valid = (*TRANSFORMS, AUGMENT)
        parts = str(term.transform).split("+")
        if AUGMENT in parts and (len(parts) > 1 or term.mode != "care" or term.role == "augment"):
            raise ConfigError(
                f"bad value for '{key}.transform': 'augment' stands alone and needs mode=care"
            )
        for part in parts:
            if part not in valid:
                raise ConfigError(
                    f"bad value for '{key}.transform': {part!r}; choose one of "
                    f"{', '.join(valid)} (or a product a+b)"
                )
        if len(set(parts)) != len(parts):
            raise ConfigError(f"bad value for '{key}.transform': {term.transform!r} repeats a part")
        if term.role == "augment" and cfg.method.invariance == "none":
            raise ConfigError(
                f"'{key}.role=augment' needs the invariance views; method.invariance is none"
            )
        if term.chunks < 1 or term.uniformity < 0:
            raise ConfigError(f"bad care settings for '{key}': chunks >= 1 and uniformity >= 0")
        if term.mode == "care" and term.role == "equivariance":
            _check_care(cfg, term, key, parts)
        if not 0 < term.size_ratio <= 4:
            raise ConfigError(f"bad size for '{key}': 0 < size_ratio <= 4")
    for key in ("equivariance", "geometry"):
        for i, name in enumerate(cfg.eval[key]):
            for part in str(name).split("+"):
                if part not in TRANSFORMS:
                    raise ConfigError(
                        f"bad value for 'eval.{key}.{i}': {part!r}; choose one of "
                        f"{', '.join(TRANSFORMS)} (or a product a+b)"
                    )
    from equissl.eval.corruptions import CORRUPTIONS

    for i, name in enumerate(cfg.eval.corruptions):
        if name not in CORRUPTIONS and not (name == "all" and len(cfg.eval.corruptions) == 1):
            raise ConfigError(
                f"bad value for 'eval.corruptions.{i}': {name!r}; choose from "
                f"{', '.join(CORRUPTIONS)}, or [all]"
            )
    for i, fraction in enumerate(cfg.eval.low_label):
        if not 0 < fraction <= 1:
            raise ConfigError(
                f"bad value for 'eval.low_label.{i}': {fraction}; a label fraction in (0, 1]"
            )
    if cfg.eval.hue_sensitivity and cfg.data.channels != 3:
        raise ConfigError("eval.hue_sensitivity needs colour images: data.channels=3")
    if len(cfg.method.vicreg_weights) != 3:
        raise ConfigError("method.vicreg_weights needs 3 numbers: similarity, variance, covariance")
    if cfg.backbone.zero_init_residual and cfg.backbone.name.startswith("eqresnet"):
        raise ConfigError("backbone.zero_init_residual applies to plain ResNets, not EqResNets")
    if not 0 <= cfg.backbone.dropout < 1:
        raise ConfigError(
            f"bad value for 'backbone.dropout': {cfg.backbone.dropout}; use 0 <= p < 1"
        )
    if cfg.backbone.pool == "group_max" and (
        cfg.augment.size or any(t.size or t.size_ratio != 1 for t in active)
    ):
        raise ConfigError(
            "backbone.pool=group_max sizes its features for the data's images: set augment.size=null "
            "and every term's size=null, size_ratio=1"
        )
    _check_moco(cfg)
    if cfg.method.classifier != "detached" and cfg.method.class_weight < 0:
        raise ConfigError("bad value for 'method.class_weight': use 0 or more")


def schema() -> DictConfig:
    """The default configuration as a typed, closed (struct) OmegaConf tree."""
    cfg = OmegaConf.structured(Config)
    OmegaConf.set_struct(cfg, True)
    return cfg


def build_config(
    presets: list[str] | tuple[str, ...] = (),
    overrides: list[str] | tuple[str, ...] = (),
    base: DictConfig | None = None,
    *,
    check: bool = True,
) -> DictConfig:
    """Defaults (or a saved run's config), then each preset in order, then overrides; validated
    unless `check=False` (a partial configuration, such as a sweep's shared part)."""
    cfg = schema() if base is None else base
    for name in presets:
        path = find_preset(name)
        cfg = _merge(cfg, _load_yaml(path), str(path))
    cfg = apply_overrides(cfg, list(overrides))
    if check:
        _check_choices(cfg)
    return cfg


def flat_settings(cfg: DictConfig) -> dict[str, Any]:
    """Every leaf of a configuration by its dotted key (list items by index: a.0.b)."""
    return dict(_leaves(OmegaConf.to_container(cfg, resolve=True)))


def load_config_file(path: str | Path) -> DictConfig:
    """A resolved config saved by a run (config.yaml), validated against the schema."""
    cfg = _merge(schema(), _load_yaml(Path(path)), str(path))
    _check_choices(cfg)
    return cfg


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)
