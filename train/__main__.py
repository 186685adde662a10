"""``python -m train`` / ``torchrun --nproc_per_node N -m train ...``: the training CLI."""
from .cli import train_main

raise SystemExit(train_main())
