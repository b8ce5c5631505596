"""The etcd client layer: the connection to etcd and the calls it offers (KV, leases, watches,
cluster), with nothing of elections in it."""
