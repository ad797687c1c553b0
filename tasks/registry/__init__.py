"""Registry: published runs and the champion.

- `publishing`: a run's create-only files under `<storage>/runs/<run_id>/`, its manifest, and verifying them;
- `gate`: the champion gate (which published model to use) and promotion;
- `cross_gate`: comparing a champion and a candidate trained on different data sets;
- `history`: every change to the champion; `admin`: rollback, pin and unpin by hand;
- `leftovers`: what interrupted runs leave behind, and its removal;
- `stages`: the Prefect tasks of the gate, the report, publishing and promotion.
"""
