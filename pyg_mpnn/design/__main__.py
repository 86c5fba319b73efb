from pyg_mpnn.design.cli import main

raise SystemExit(main())
