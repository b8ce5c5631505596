"""``python -m etcd_elector.cli``: the same as the ``etcd-elector`` command."""

from etcd_elector.cli import main

raise SystemExit(main())
