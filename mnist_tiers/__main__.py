"""`python -m mnist_tiers`: the same as the `mnist-tiers` command."""

import sys

from mnist_tiers.cli import main

sys.exit(main())
