"""``python -m alage_edge.train`` / ``torchrun --nproc_per_node N -m alage_edge.train ...``: the training CLI."""
from .cli import train_main

raise SystemExit(train_main())
