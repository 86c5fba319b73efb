"""``python -m pyg_mpnn.design``: the arguments are read before torch loads, so ``--help`` and
usage errors answer at once."""

from pyg_mpnn.design.options import parser

parser().parse_args()
from pyg_mpnn.design.cli import main  # noqa: E402  (torch loads here)

raise SystemExit(main())
