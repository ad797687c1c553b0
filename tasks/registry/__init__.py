"""Registry: published runs and the champion.

- `publishing`: a run's context, its create-only files under `<storage>/runs/<run_id>/`, its manifest, verifying them;
- `unchanged`: whether a run would only repeat the latest published run (same data, code and config);
- `records`: the champion record (champion.json) and the one check that it still names what was promoted;
- `gate`: the champion gate (which published model to use) and promotion;
- `cross_gate`: comparing a champion and a candidate trained on different data sets;
- `history`: every change to the champion; `admin`: rollback, pin and unpin by hand;
- `leftovers`: what interrupted runs leave behind, and its removal;
- `stages`: the Prefect tasks of the unchanged check, the gate, the report, publishing and promotion.
"""
