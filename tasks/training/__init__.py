"""Training: the variants, fitting them (with the under-trained guard), the baseline and sweeps.

- `variants`: every model variant, defined once (name, builder, options); `layers` and `build` make its Keras model;
- `jobs`: a training's records, light enough for any process (`TrainingJob`, `TrainedVariant`, `Attempt`, seeds);
- `fit`: the Keras side (optimiser, callbacks, restarts); only a training process imports it (and `feed`);
- `splits`: reading a stored split batch by batch, and copying its ids to a local `.npy` for training;
- `feed`: the Keras feed over that copy (a `PyDataset` on a memory map, shuffled afresh each epoch);
- `worker`: a training's own process (`python -m tasks.training.worker`); `supervisor`: the parent's side of it;
- `guard`: the health rule (stalled, under-trained); `baseline`: the bag-of-words bar every variant must reach;
- `evaluation`: scoring a model on the test split (`ClassificationMetrics`); `sweeps`: a sweep's points and table;
- `stages`: the Prefect tasks of training, evaluation and the sweep's artifacts.
"""
