"""The election layer: sessions, terms, campaigns, read-only views and the elector, built on
the public calls of the etcd client below (:mod:`etcd_elector.etcd`) and on nothing above."""
