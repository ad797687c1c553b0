"""Storage: every read and write, keyed by URI, and the keys of the cache.

- `fs`: one storage layer for local paths, `file://` and `s3://` (fsspec), create-only and conditional writes;
- `layout`: every folder and file name under the storage root (and the work dir's scratch), defined once;
- `cache_keys`: the cache keys of the stages, from content, parameters and the code each stage imports.
"""
