"""Local Kubernetes control planes for tests, benchmarks and the demo.

Everything here runs real binaries (etcd, kube-apiserver, controller-manager,
scheduler) as child processes; nothing fakes the Kubernetes API.
"""
