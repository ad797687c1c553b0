"""Data: from a source to the stored splits the models train on.

- `sources`: finding the raw reviews (the Keras imdb.npz, a mirror, the offline corpus), downloaded and verified;
- `corpus`: reviews as word ids (`Reviews`), the imdb.npz and offline-corpus loaders;
- `own_reviews`: one's own labelled reviews (CSV, JSONL, Parquet) read, checked, deduplicated and split by text hash;
- `split`: a source's train and test reviews, its training part split into train and val;
- `vocabulary`: the word -> id map and tokenizer that travel with every model;
- `store`: padding to `maxlen` and the Parquet splits of a data set;
- `prepare`: a resolved source split, padded and stored with its vocabulary (the stages' logic, and the tools');
- `checks`: statistics of every split and the checks that stop a bad data set (`DataCheckResult`);
- `drift`: a data set or scoring batch against the data a model was trained on;
- `watch`: which snapshots of a prefix of one's own reviews no published run has trained on;
- `stages`: the Prefect tasks of the data stages (check storage, download, split, store, check data) and
  of the data watch.
"""
