"""Local stand-ins for production services (S3, Dask) and the deployment and cluster manifests."""
