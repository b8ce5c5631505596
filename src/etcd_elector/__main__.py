"""``python -m etcd_elector``: the same as the ``etcd-elector`` command."""

from etcd_elector.cli import main

raise SystemExit(main())
