"""A training run's settings and their allowed values: what ``train_a_model.py`` takes, ``auto_train.py``
sweeps, ``models`` builds and the training log records.

The facts live here, below the stages, so that the network builder, the sweep planner and the log read them
without importing the training stage. Pure Python: no TensorFlow, no Keras.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

NETWORKS = ("small", "deep", "mobilenetv2")
OPTIMIZERS = {"adam": 1e-3, "adamw": 1e-3, "sgd": 1e-2, "rmsprop": 1e-3}
AUGMENTATIONS = ("none", "light", "heavy")
KERNEL_SIZES = (3, 5, 7)
ALPHAS = (0.35, 0.5, 0.75, 1.0)  # MobileNetV2's widths with ImageNet weights that --alpha offers
DEFAULT_ALPHA = 0.35  # the narrowest: it fits 2 CPU cores, and it is the shared weights file's width
DEFAULT_WARMUP_EPOCHS = 3  # epochs of training the head alone on a frozen pretrained trunk
FINE_TUNE_FACTOR = 0.1  # the learning rate after the warm-up, when the whole pretrained network trains
# The seven a sweep varies (with the learning rate); in this order in plots and leaderboards.
HYPERPARAMETERS = ("model", "epochs", "batch_size", "image_size", "kernel_size", "optimizer", "augmentation")
# MobileNetV2's start (imagenet, none or a file) and width sweep too; other networks ignore them.
MOBILENET_KEYS = ("weights", "alpha")
# Everything a sweep's grid may vary, and what the log and the report show of a run's settings.
GRID_KEYS = (*HYPERPARAMETERS, "learning_rate", "seed", *MOBILENET_KEYS)


@dataclass(frozen=True)
class Settings:
    """The seven hyperparameters and the rest of a run, validated on construction.

    For mobilenetv2, ``weights``, ``alpha`` and ``warmup_epochs`` left as None become their defaults
    (``"imagenet"``, 0.35, and 3 epochs when the trunk is pretrained, else 0), so that the log records what
    a run used; the other networks leave them None.
    """

    model: str = "mobilenetv2"
    epochs: int = 20
    batch_size: int = 32
    image_size: int = 128
    kernel_size: int = 3
    optimizer: str = "adam"
    learning_rate: float | None = None
    augmentation: str = "light"
    data: str = "processed_data"
    logs: str = "logs"
    seed: int = 42
    val_split: float = 0.15
    test_split: float = 0.15
    notes: str = ""
    weights: str | None = None
    jobs: int = 0
    sweep_id: str = ""
    alpha: float | None = None
    warmup_epochs: int | None = None

    def __post_init__(self) -> None:
        if self.model not in NETWORKS:
            raise ValueError(f"--model must be one of {', '.join(NETWORKS)}, not {self.model!r}")
        if not 1 <= self.epochs <= 10_000:
            raise ValueError(f"--epochs must be between 1 and 10000, not {self.epochs}")
        if not 1 <= self.batch_size <= 4096:
            raise ValueError(f"--batch-size must be between 1 and 4096, not {self.batch_size}")
        if not 32 <= self.image_size <= 512:
            raise ValueError(f"--image-size must be between 32 and 512 pixels, not {self.image_size}")
        if self.kernel_size not in KERNEL_SIZES:
            raise ValueError(f"--kernel-size must be 3, 5 or 7, not {self.kernel_size}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, not {self.optimizer!r}")
        if self.learning_rate is not None and not 0 < self.learning_rate < 10:
            raise ValueError(f"--learning-rate must be between 0 and 10, not {self.learning_rate}")
        if self.augmentation not in AUGMENTATIONS:
            raise ValueError(f"--augmentation must be one of {', '.join(AUGMENTATIONS)}, not {self.augmentation!r}")
        for name in ("val_split", "test_split"):
            if not 0 < getattr(self, name) < 0.5:
                raise ValueError(f"--{name.replace('_', '-')} must be between 0 and 0.5, not {getattr(self, name)}")
        if not 0 <= self.seed < 2**32:
            raise ValueError(f"--seed must be between 0 and {2**32 - 1}, not {self.seed}")
        if self.jobs < 0:
            raise ValueError(f"--jobs must be at least 1, not {self.jobs}")
        if self.model == "mobilenetv2":
            # refused like --alpha on the other networks: a setting the network ignores would be logged as used
            if self.kernel_size != 3:
                raise ValueError("--kernel-size is for --model small and deep only (mobilenetv2's kernels are 3)")
            self._check_mobilenetv2()
        else:
            for name in ("weights", "alpha", "warmup_epochs"):
                if getattr(self, name) not in (None, ""):
                    raise ValueError(f"--{name.replace('_', '-')} is for --model mobilenetv2 only")

    def _check_mobilenetv2(self) -> None:
        # the defaults are filled in here, the way a frozen dataclass allows, so that the log shows them
        if not self.weights:
            object.__setattr__(self, "weights", "imagenet")
        if self.weights not in ("none", "imagenet") and not Path(self.weights).is_file():
            raise ValueError(f"--weights must be none, imagenet or a weights file, and {self.weights} does not exist")
        if self.alpha is None:
            object.__setattr__(self, "alpha", DEFAULT_ALPHA)
        if self.alpha not in ALPHAS:
            raise ValueError(f"--alpha must be one of {', '.join(map(str, ALPHAS))}, not {self.alpha}")
        if self.warmup_epochs is None:
            # the default fits in a short run; a value given above --epochs is refused below
            object.__setattr__(self, "warmup_epochs", min(DEFAULT_WARMUP_EPOCHS, self.epochs) if self.pretrained else 0)
        if not self.pretrained and self.warmup_epochs:
            raise ValueError("--warmup-epochs is for a pretrained trunk: with --weights none everything trains "
                             "from the start")
        if not 0 <= self.warmup_epochs <= 10_000:
            raise ValueError(f"--warmup-epochs must be between 0 and 10000, not {self.warmup_epochs}")
        if self.warmup_epochs > self.epochs:
            raise ValueError(f"--warmup-epochs {self.warmup_epochs} is more than --epochs {self.epochs}, which counts "
                             "both: lower it or raise --epochs")

    @property
    def pretrained(self) -> bool:
        """Whether the network starts from weights (ImageNet's or a file's), and so warms up and fine-tunes."""
        return self.model == "mobilenetv2" and self.weights not in (None, "", "none")

    @property
    def rate(self) -> float:
        return self.learning_rate if self.learning_rate is not None else OPTIMIZERS[self.optimizer]

    def hyperparameters(self) -> dict:
        """The seven and the learning rate; for mobilenetv2 also its width, weights and warm-up."""
        extra = {key: getattr(self, key) for key in ("alpha", "weights", "warmup_epochs")
                 if self.model == "mobilenetv2"}
        return {key: getattr(self, key) for key in HYPERPARAMETERS} | {"learning_rate": self.rate} | extra
