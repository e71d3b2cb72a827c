"""DataBuild Operator: builds data partitions on demand on Kubernetes."""

__version__ = "0.1.0"
