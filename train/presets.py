"""Named model + schedule configurations (``--preset``), read by ``TrainConfig.from_preset``."""

# One line each on why; the measurements behind the choices are in docs/experiments.md.
PRESETS = {
    # the paper's schedule: ImageNet start, SGD, 30/20/10 epochs (GPU)
    "paper": {"model": {}, "epochs": (30, 20, 10), "batch_size": 32, "optimizer": "sgd", "lr": 0.01, "l1": 0.0,
              "joint_lr_scale": 0.1},
    # CPU in minutes: the LSTM picks five 48 px anchors (every 8 px) of the detail image per face; all epochs
    # joint, L1 on every head (the ranking loss needs no staged schedule)
    "compact": {"model": {"global_size": 112, "width": 8, "local_width": 12, "crop_size": 48, "steps": 5,
                          "anchor_stride": 8, "hidden": 128},
                "epochs": (0, 0, 12), "batch_size": 64, "optimizer": "adamw", "lr": 2e-3, "l1": 0.05,
                "l1_heads": "all", "joint_lr_scale": 1.0},
    # the tests' model: every code path in seconds
    "tiny": {"model": {"global_size": 64, "width": 8, "local_width": 8, "crop_size": 32, "hidden": 32},
             "epochs": (1, 1, 1), "batch_size": 16, "optimizer": "adamw", "lr": 2e-3, "l1": 0.05,
             "joint_lr_scale": 0.3},
}

DEFAULT_LR = {"sgd": 0.01, "adamw": 1e-3}  # for an optimiser other than the preset's
